"""The Dockerfile builds what the deployment expects, checked by parsing it (no Docker engine here).

A small parser reads the instructions the way BuildKit does (line continuations, comment lines,
JSON or shell form, global ``ARG`` substitution in ``FROM``), resolves each target's chain of
stages, and checks the properties the images must have: two targets, slim Python 3.11, non-root
numeric user, no compilers and no HEALTHCHECK in the final images, read-only-rootfs friendly
environment, the exact entrypoints, and a ``.dockerignore`` that keeps the context small.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    cmd: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of ``ENTRYPOINT ["a", "b"]``; None for the shell form."""
        if self.args.startswith("["):
            value = json.loads(self.args)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
            return value
        return None

    def flags(self) -> dict[str, str]:
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.args))


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (defaults) and the stages, in order."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # comments vanish even inside a continuation; blank lines end nothing
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        logical.append((start, buf))
        buf = ""
    assert not buf, "the Dockerfile ends inside a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for n, line in logical:
        cmd, _, rest = line.partition(" ")
        cmd = cmd.upper()
        rest = rest.strip()
        if cmd == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.I)
            assert m, f"line {n}: bad FROM {rest!r}"
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda v: args[v.group(1) or v.group(2)], m.group(1))
            stages.append(Stage(name=m.group(2) or str(len(stages)), base=base))
        elif not stages:
            assert cmd == "ARG", f"line {n}: only ARG may come before the first FROM"
            k, _, v = rest.partition("=")
            args[k] = v
        else:
            stages[-1].instructions.append(Instruction(cmd=cmd, args=rest, line=n))
    return args, stages


def chain(stages: list[Stage], target: str) -> list[Stage]:
    """The target stage and every stage it is built FROM, base first."""
    by_name = {s.name: s for s in stages}
    out: list[Stage] = []
    s: Stage | None = by_name[target]
    while s is not None:
        out.insert(0, s)
        s = by_name.get(s.base)
    return out


def copied_from(stages: list[Stage], target: str) -> set[str]:
    """Every stage whose files end up in the target (FROM chain and COPY --from, transitively)."""
    by_name = {s.name: s for s in stages}
    seen: set[str] = set()
    todo = [target]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        st = by_name[name]
        todo.append(st.base)
        todo += [i.flags()["from"] for i in st.all("COPY") if "from" in i.flags()]
    return seen


def effective(stages: list[Stage], target: str, cmd: str) -> Instruction | None:
    found = [i for s in chain(stages, target) for i in s.all(cmd)]
    return found[-1] if found else None


def env(stages: list[Stage], target: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in chain(stages, target):
        for i in s.all("ENV"):
            out.update(re.findall(r"(\w+)=(\S+)", i.args))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


# -- the parser, on known input ----------------------------------------------------------------------

def test_parser_handles_continuations_comments_and_args() -> None:
    args, stages = parse(
        "# syntax=docker/dockerfile:1\nARG BASE=python:3.11-slim\n\nFROM ${BASE} AS a\n"
        "RUN echo one \\\n  # a comment inside\n  && echo two\nFROM a AS b\nUSER 1000:1000\n"
        'ENTRYPOINT ["x", "run"]\nCMD --flag\n'
    )
    assert args == {"BASE": "python:3.11-slim"}
    assert [(s.name, s.base) for s in stages] == [("a", "python:3.11-slim"), ("b", "a")]
    (run,) = stages[0].all("RUN")
    assert run.args == "echo one  && echo two" and run.line == 5
    assert effective(stages, "b", "ENTRYPOINT").exec_form() == ["x", "run"]  # type: ignore[union-attr]
    assert effective(stages, "b", "CMD").exec_form() is None  # type: ignore[union-attr]
    assert [s.name for s in chain(stages, "b")] == ["a", "b"]


# -- the images ----------------------------------------------------------------------------------------

TARGETS = {"daemon": ["kserve-warden", "run"], "serving": ["python", "-m", "serving"]}


def test_two_targets_on_slim_python_311(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    names = [s.name for s in stages]
    assert set(TARGETS) <= set(names)
    assert names[-1] == "daemon", "the default target (last stage) is the daemon"
    for target in TARGETS:
        root = chain(stages, target)[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", root.base), root.base
    # the builder stages use the same interpreter the final images run (venvs are copied across)
    for s in stages:
        if s.base not in names:
            assert s.base == chain(stages, "daemon")[0].base, s.name


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_final_images_are_multi_stage_and_compiler_free(dockerfile: tuple[dict[str, str], list[Stage]],
                                                        target: str) -> None:
    _, stages = dockerfile
    final = chain(stages, target)
    assert any("from" in i.flags() for s in final for i in s.all("COPY")), "nothing is built in another stage"
    for s in final:
        for run in s.all("RUN"):
            assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|\bclang\b|\bmake\b|-dev\b", run.args), run
            assert "pip install" not in run.args, f"{target}: install in a builder stage, copy the result"
    for s in stages:
        for run in s.all("RUN"):
            assert not re.search(r"build-essential|\bgcc\b", run.args), "no stage needs a compiler"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_final_images_run_as_numeric_non_root(dockerfile: tuple[dict[str, str], list[Stage]],
                                              target: str) -> None:
    _, stages = dockerfile
    user = effective(stages, target, "USER")
    assert user is not None, f"{target}: no USER"
    assert user in chain(stages, target)[-1].instructions, f"{target}: set USER in the final stage itself"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric, so runAsNonRoot can verify it"
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_daemon_uid_matches_the_deployment(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    user = effective(stages, "daemon", "USER")
    assert user is not None
    dep = yaml.safe_load((ROOT / "config/deploy/base/deployment.yaml").read_text())
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user.args.split(":")[0])
    expose = effective(stages, "daemon", "EXPOSE")
    port = dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert expose is not None and expose.args == str(port)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_read_only_rootfs_friendly(dockerfile: tuple[dict[str, str], list[Stage]], target: str) -> None:
    _, stages = dockerfile
    e = env(stages, target)
    assert e["PYTHONDONTWRITEBYTECODE"] == "1"
    assert e["HOME"] == "/tmp" and e["TMPDIR"] == "/tmp"
    vols = [i.args for s in chain(stages, target) for i in s.all("VOLUME")]
    assert any("/tmp" in v for v in vols)


def test_no_healthcheck(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert not [i for s in stages for i in s.all("HEALTHCHECK")], "Kubernetes probes do that"


@pytest.mark.parametrize(("target", "entrypoint"), sorted(TARGETS.items()))
def test_entrypoints_are_exact(dockerfile: tuple[dict[str, str], list[Stage]], target: str,
                               entrypoint: list[str]) -> None:
    _, stages = dockerfile
    ep = effective(stages, target, "ENTRYPOINT")
    assert ep is not None and ep.exec_form() == entrypoint
    # and the commands exist in the package: the console script, the runnable module
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kserve-warden"] == "daemon.process.cli:main"
    assert (ROOT / "serving/__main__.py").is_file()


def test_serving_honours_kserve_model_dir(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    cmd = effective(stages, "serving", "CMD")
    assert cmd is not None
    argv = cmd.exec_form()
    assert argv is not None and argv[argv.index("--model_dir") + 1] == "/mnt/models"
    assert "--http_port" in argv
    assert effective(stages, "daemon", "CMD") is None, "the Deployment passes the daemon's flags"


def test_daemon_image_has_no_sandbox_extra(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    by_name = {s.name: s for s in stages}
    for name in copied_from(stages, "daemon"):
        if name in by_name:
            for run in by_name[name].all("RUN"):
                assert "[sandbox]" not in run.args and "[test]" not in run.args, run
    installs = [r for n in copied_from(stages, "daemon") if n in by_name for r in by_name[n].all("RUN")
                if "pip install" in r.args]
    assert installs, "the daemon image installs the wheel somewhere"


def test_copy_from_names_real_stages(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    earlier: set[str] = set()
    for s in stages:
        for i in s.all("COPY"):
            if "from" in i.flags():
                assert i.flags()["from"] in earlier, f"line {i.line}: unknown stage {i.flags()['from']}"
        earlier.add(s.name)


# -- the build context ----------------------------------------------------------------------------------

def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a match on a parent counts."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        if any(fnmatch.fnmatchcase(x, p)
               or (p.startswith("**/") and fnmatch.fnmatchcase(x.rsplit("/", 1)[-1], p[3:]))
               for x in prefixes):
            ignored = not neg
    return ignored


def test_dockerignore_keeps_the_context_to_the_sources(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    _, stages = dockerfile
    for s in stages:
        for i in s.all("COPY"):
            if "from" not in i.flags():
                for src in i.args.split()[:-1]:
                    assert not _ignored(src, patterns), f"COPY {src} is excluded by .dockerignore"
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".cache/tools/bin/promtool",
                 "bench/x.py", "daemon/__pycache__/cli.cpython-311.pyc", "kserve_warden.egg-info/PKG-INFO"):
        assert _ignored(path, patterns), path
    assert not _ignored("daemon/defaults/warden.yaml", patterns)
    assert not _ignored("serving/__main__.py", patterns)


def test_dockerignore_matcher() -> None:
    pats = ["*", "!daemon/", "**/__pycache__"]
    assert _ignored("README.md", pats)
    assert not _ignored("daemon/process/cli.py", pats)
    assert _ignored("daemon/__pycache__/x.pyc", pats)
    assert Path(DOCKERFILE).is_file()
