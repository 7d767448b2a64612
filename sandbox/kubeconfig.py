"""Write a kubeconfig that points kubectl and kubernetes_asyncio at the sandbox API server.

The stand-in does no authentication, so the user entry carries no credentials (a token over
plain HTTP would only make kubectl warn). The file is written atomically (temporary file, then
rename) with mode 0600, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "kserve-warden-sandbox"


def kubeconfig_dict(*, server: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, *, server: str, namespace: str = "default") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = yaml.safe_dump(kubeconfig_dict(server=server, namespace=namespace), sort_keys=False)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)
