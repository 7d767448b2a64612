"""Nothing happens at import time, and importing one part of the sandbox does not load it all.

Each check runs in a fresh interpreter (the test process has long since imported everything):
importing every module of the four packages must print nothing, exit nothing, start no thread
and register no metric on prometheus_client's global ``REGISTRY``; ``import sandbox.apiserver``
must not pull in moto, boto or the model server (the package's ``__init__`` is lazy, PEP 562).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("daemon", "probes", "serving", "sandbox")

IMPORT_ALL = """
import importlib, json, pkgutil, sys, threading
from prometheus_client import REGISTRY

def names():
    return sorted(m.name for m in REGISTRY.collect())

before = names()
imported = []
for pkg in sys.argv[1:]:
    mod = importlib.import_module(pkg)
    imported.append(pkg)
    for info in pkgutil.walk_packages(mod.__path__, prefix=pkg + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
print(json.dumps({"imported": imported, "before": before, "after": names(),
                  "threads": [t.name for t in threading.enumerate()]}))
"""

LOADED = """
import json, sys
{stmt}
heavy = ("moto", "boto3", "botocore", "serving", "xgboost", "sklearn", "sandbox.cluster", "sandbox.s3")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def _python(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    return out.stdout


def test_importing_every_module_does_nothing() -> None:
    doc = json.loads(_python(IMPORT_ALL, *PACKAGES))
    assert {"daemon.__main__", "daemon.process.runner", "serving.app", "sandbox.cluster", "probes.dns",
            "sandbox.demo.run"} <= set(doc["imported"])
    assert doc["after"] == doc["before"], "a module registered metrics on the global REGISTRY"
    assert doc["threads"] == ["MainThread"], "a module started a thread at import"


@pytest.mark.parametrize(("stmt", "loaded"), [
    ("import sandbox.apiserver", []),
    ("import sandbox.dns, sandbox.kubeconfig, sandbox.world", []),
    ("import sandbox", []),
    # sandbox.inject talks S3 (the storage-initializer's client), not moto or the model server.
    ("from sandbox import FAILURES; assert 'dns-timeout' in FAILURES", ["botocore"]),
])
def test_sandbox_parts_import_alone(stmt: str, loaded: list[str]) -> None:
    assert json.loads(_python(LOADED.format(stmt=stmt))) == loaded


def test_from_sandbox_import_sandbox_still_works() -> None:
    stmt = ("from sandbox import FAILURES, Sandbox\nimport sandbox\n"
            "assert Sandbox.FAILURES is FAILURES and sandbox.Sandbox is Sandbox\n"
            "assert Sandbox.__module__ == 'sandbox.cluster'")
    assert "sandbox.cluster" in json.loads(_python(LOADED.format(stmt=stmt)))
