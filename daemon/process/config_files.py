"""Reading the settings file and the desired-state directory: the file I/O the pure core leaves out.

:func:`load_settings` reads the embedded defaults (``daemon/defaults/warden.yaml``) and the
operator's file and hands both texts to :func:`daemon.core.settings.parse_settings`;
:func:`load_desired` reads every manifest file for :func:`daemon.core.desired.parse_desired`.
Both raise the core's error types, with every problem at once.

No desired directory (``desired.dir: null``, the embedded default) means *no desired state*:
the daemon then diagnoses and applies nothing. The seed's manifests belong to the demo and the
sandbox (``sandbox/demo/desired``) and to the configured example (``config/desired``), never to
a default that would apply them to whatever cluster a kubeconfig reaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from daemon.core.desired import DesiredError, DesiredState, parse_desired
from daemon.core.settings import Settings, SettingsError, parse_settings

DEFAULT_SETTINGS_FILE = "warden.yaml"


def default_settings_text() -> str:
    """The embedded default settings file (packaged with the daemon)."""
    return resources.files("daemon").joinpath("defaults").joinpath(DEFAULT_SETTINGS_FILE).read_text("utf-8")


def load_settings(path: Path | None, *, environ: Mapping[str, str]) -> Settings:
    """Read, merge over the embedded defaults, override from ``environ``, validate.

    Raises :class:`~daemon.core.settings.SettingsError` with every problem found.
    """
    user: tuple[Path, str] | None = None
    if path is not None:
        try:
            user = (path, path.read_text("utf-8"))
        except OSError as exc:
            raise SettingsError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_settings(default_settings_text(), user, environ=environ)


def load_desired(path: Path | None) -> DesiredState:
    """Load every ``*.yaml``/``*.yml`` of ``path`` (a directory or one file), sorted by name.

    ``None``: no desired state (nothing to apply). Raises :class:`DesiredError` listing every
    problem.
    """
    if path is None:
        return parse_desired([])
    try:
        paths = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) \
            if path.is_dir() else [path]
        files = [(str(p), p.read_text("utf-8")) for p in paths]
    except OSError as exc:
        raise DesiredError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_desired(files)
