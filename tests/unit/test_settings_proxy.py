"""``probes.predictor.proxy``: an ``http://host:port`` URL or nothing, refused at start-up with one
clear line otherwise (and never echoing a password). Pure: :func:`parse_settings` on texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.settings import SettingsError, parse_settings
from daemon.process.config_files import default_settings_text

FILE = Path("warden.yaml")


def _text(value: str) -> str:
    return f"probes:\n  predictor:\n    proxy: {value}\n"


SHAPE = "probes.predictor.proxy: must be an http://host:port URL"

BAD = [
    # (name, YAML value, the one problem expected)
    ("no scheme", "'127.0.0.1:8080'", f"{SHAPE}, got '127.0.0.1:8080'"),
    ("no port", "'http://proxy.local'", f"{SHAPE}, got 'http://proxy.local'"),
    ("port out of range", "'http://h:70000'", f"{SHAPE}, got 'http://h:70000'"),
    ("port zero", "'http://h:0'", f"{SHAPE}, got 'http://h:0'"),
    ("port not a number", "'http://h:http'", f"{SHAPE}, got 'http://h:http'"),
    ("no host", "'http://:3128'", f"{SHAPE}, got 'http://:3128'"),
    ("https proxy", "'https://h:3128'", "probes.predictor.proxy: only an http:// proxy is supported, got 'https://h:3128'"),
    ("socks", "'socks5://h:1080'", f"{SHAPE}, got 'socks5://h:1080'"),
    ("a path", "'http://h:3128/proxy'",
     f"{SHAPE} with no path or query, got 'http://h:3128/proxy'"),
    ("a query", "'http://h:3128?x=1'",
     f"{SHAPE} with no path or query, got 'http://h:3128?x=1'"),
    ("credentials", "'http://bob:hunter2@h:3128'",
     "probes.predictor.proxy: must not carry credentials (user:password@): the settings are no place "
     "for a secret"),
    ("credentials and a bad port", "'http://bob:hunter2@h:port'",
     "probes.predictor.proxy: must not carry credentials"),
    ("empty", "''", "probes.predictor.proxy: expected a non-empty string"),
    ("not a string", "[a, b]", "probes.predictor.proxy: expected"),
]


@pytest.mark.parametrize(("name", "value", "problem"), BAD, ids=[b[0] for b in BAD])
def test_refused(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as exc:
        parse_settings(default_settings_text(), (FILE, _text(value)), environ={})
    assert [p for p in exc.value.problems if p.startswith(problem)], exc.value.problems
    assert len(exc.value.problems) == 1 and "\n" not in exc.value.problems[0]
    assert "hunter2" not in str(exc.value)


GOOD = [
    ("loopback", "'http://127.0.0.1:39117'", "http://127.0.0.1:39117"),
    ("a name, trailing slash", "'http://cluster-proxy.example.com:3128/'", "http://cluster-proxy.example.com:3128/"),
    ("IPv6", "'http://[::1]:3128'", "http://[::1]:3128"),
    ("null: direct", "null", None),
]


@pytest.mark.parametrize(("name", "value", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_accepted(name: str, value: str, expected: str | None) -> None:
    s = parse_settings(default_settings_text(), (FILE, _text(value)), environ={})
    assert s.probes.predictor.proxy == expected


def test_default_is_direct() -> None:
    assert parse_settings(default_settings_text(), None, environ={}).probes.predictor.proxy is None
