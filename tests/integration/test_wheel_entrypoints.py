"""The images' exact entrypoints start from the installed wheel, in a clean virtualenv.

This does what the Dockerfile does, without Docker: copy the build context the
``.dockerignore`` lets through, build the wheel (``pip wheel --no-deps``), create a fresh
virtualenv (no system site-packages, not the project's venv, no pip of its own) and ``pip install`` the wheel
*without* the ``sandbox`` extra, as the daemon image does. Then:

- ``kserve-warden --help``, ``kserve-warden run --help``, ``kserve-warden check --help`` answer,
  and ``kserve-warden check`` with a missing settings file exits 2 (bad input), proving the real
  command path imports without the sandbox's packages; ``kserve-warden sandbox`` and ``demo``
  say in one line that they need the ``sandbox`` extra, and exit 2;
- ``python -m serving.train --out DIR`` trains a model and ``python -m serving --model_dir DIR
  --model_name iris --http_port PORT`` (the serving image's entrypoint and KServe's flags) starts
  and answers ``/v2/health/ready`` and a V1 prediction, then exits 0 on SIGTERM;
- the wheel holds the packages and the daemon's embedded defaults, and nothing else (no tests,
  no config/deploy, no caches).

Installing the dependencies takes a minute or so (from the package index): one virtualenv is
built per test session (module-scoped fixture), not per test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

PACKAGES = ("daemon", "probes", "serving", "sandbox")
INSTALL_TIMEOUT = 900
# The first test pays for the install (the module fixture); pytest-timeout counts fixture time.
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 300)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        out: subprocess.CompletedProcess[str] = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=self.venv.parent,
            check=False)
        return out


def _context(dst: Path) -> Path:
    """The Docker build context: exactly what the Dockerfile COPYs."""
    dst.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, dst / f)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return dst


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    ctx = _context(base / "src")
    dist = base / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--wheel-dir", str(dist), str(ctx)],
        capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("kserve_warden-*.whl")
    venv = base / "venv"
    # No pip inside the venv (the image removes it anyway), installed into by this pip with
    # --python; and no bytecode compilation (8 of the 11 s, and not what is tested here).
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    t0 = time.monotonic()
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install",
                          "--quiet", "--no-compile", str(wheel)],
                         capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    print(f"clean venv install: {time.monotonic() - t0:.1f}s", file=sys.stderr)
    yield Installed(wheel=wheel, venv=venv)


# -- what the wheel holds ---------------------------------------------------------------------------

def test_wheel_contents(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as z:
        names = z.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "kserve-warden = daemon.process.cli:main" in z.read(entry_points).decode()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        embedded = {n: z.read(n) for n in names if n.startswith("daemon/defaults/")}
    tops = {n.split("/", 1)[0] for n in names}
    assert tops - set(PACKAGES) == {next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "config/", "bench/", "docs/"))]
    for pkg in PACKAGES:
        assert f"{pkg}/py.typed" in names
    # data files: the type markers, the daemon's embedded defaults, the demo's seed manifests
    # (sandbox/demo/desired: the daemon's default has no desired state) and the gRPC contract
    # (serving/grpc_gen: the .proto and its stubs' type hints), nothing else
    data = [n for n in names if not n.endswith(".py") and ".dist-info/" not in n]
    allowed = (("daemon/defaults/", (".yaml",)), ("sandbox/demo/desired/", (".yaml",)),
               ("serving/grpc_gen/", (".proto", ".pyi")))
    odd = [n for n in data if not (n.endswith("/py.typed") or any(
        n.startswith(prefix) and n.endswith(exts) for prefix, exts in allowed))]
    assert not odd, f"unexpected files in the wheel: {odd}"
    assert "serving/__main__.py" in names
    # the daemon's embedded defaults: every file under daemon/defaults, byte for byte
    on_disk = {p.relative_to(ROOT).as_posix(): p.read_bytes()
               for p in (ROOT / "daemon/defaults").rglob("*") if p.is_file() and p.suffix == ".yaml"}
    assert on_disk and embedded == on_disk
    # the sandbox's heavy dependencies are an extra, not a requirement
    requires = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist:")]
    moto = [ln for ln in requires if ln.split()[1].startswith("moto")]
    assert moto and all('extra == "sandbox"' in ln for ln in moto), moto


def test_clean_venv_has_no_sandbox_extra(installed: Installed) -> None:
    out = installed.run(str(installed.bin / "python"), "-c", "import moto")
    assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr
    out = installed.run(str(installed.bin / "python"), "-c", "import daemon, sys; print(daemon.__file__)")
    assert out.returncode == 0 and str(installed.venv) in out.stdout, "imported from the venv, not the repo"


# -- the daemon image's entrypoint: kserve-warden run ---------------------------------------------------

@pytest.mark.parametrize("argv", [("--help",), ("run", "--help"), ("check", "--help")])
def test_kserve_warden_help(installed: Installed, argv: tuple[str, ...]) -> None:
    out = installed.run(str(installed.bin / "kserve-warden"), *argv)
    assert out.returncode == 0, out.stderr
    assert "usage: kserve-warden" in out.stdout


def test_kserve_warden_check_rejects_a_missing_config(installed: Installed, tmp_path: Path) -> None:
    out = installed.run(str(installed.bin / "kserve-warden"), "check",
                        "--config", str(tmp_path / "nope.yaml"),
                        "--kubeconfig", str(tmp_path / "nokubeconfig"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_kserve_warden_run_rejects_bad_settings(installed: Installed, tmp_path: Path) -> None:
    bad = tmp_path / "warden.yaml"
    bad.write_text("remediation:\n  backoff_initial_seconds: -5\nnot_a_key: 1\n")
    out = installed.run(str(installed.bin / "kserve-warden"), "run", "--config", str(bad), "--once",
                        "--kubeconfig", str(tmp_path / "nokubeconfig"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "backoff_initial_seconds" in out.stdout + out.stderr and "not_a_key" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("argv", [("sandbox",), ("demo", "--json")])
def test_sandbox_commands_without_the_extra_say_so(installed: Installed, argv: tuple[str, ...]) -> None:
    # The clean venv has no moto/dnslib (as after `pip install kserve-warden`): one line, exit 2.
    out = installed.run(str(installed.bin / "kserve-warden"), *argv)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr == "the sandbox needs the 'sandbox' extra: pip install 'kserve-warden[sandbox]'\n"
    assert out.stdout == ""


# -- the serving image's entrypoint: python -m serving ---------------------------------------------------

def test_serving_help(installed: Installed) -> None:
    out = installed.run(str(installed.bin / "python"), "-m", "serving", "--help")
    assert out.returncode == 0, out.stderr
    assert "--model_dir" in out.stdout and "--http_port" in out.stdout


def _get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def test_serving_starts_from_a_trained_model(installed: Installed, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    trained = installed.run(str(installed.bin / "python"), "-m", "serving.train", "--out", str(model_dir),
                            timeout=300)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert any(model_dir.iterdir())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{installed.bin}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        [str(installed.bin / "python"), "-m", "serving", "--model_dir", str(model_dir),
         "--model_name", "iris", "--http_port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = _get(f"{base}/v2/health/ready")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                status = 0
            if status == 200:
                break
            time.sleep(0.2)  # polling a child process's port: nothing to await
        assert status == 200, f"not ready (exit {proc.poll()})"
        request = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
        code, body = _get(f"{base}/v1/models/iris:predict", request)
        assert code == 200, body
        assert json.loads(body)["predictions"] == [0], "setosa: the trained model, not a dummy"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("python -m serving did not exit within 30 s of SIGTERM")
    assert proc.returncode == 0, err[-2000:]
