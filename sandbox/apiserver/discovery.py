"""Discovery documents: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/GROUP[/VERSION]``.

Only the legacy (unaggregated) forms are served, with ``Content-Type: application/json``;
kubectl asks for aggregated discovery first and falls back to these when the answer is not of
that type, as it does against older servers.
"""

from __future__ import annotations

from sandbox.apiserver.registry import Registry
from sandbox.apiserver.status import JSON

VERSION: JSON = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-kserve-warden-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> JSON:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> JSON:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, vs) for g, vs in registry.group_versions()],
    }


def api_group(registry: Registry, group: str) -> JSON | None:
    for g, vs in registry.group_versions():
        if g == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(g, vs)}
    return None


def resource_list(registry: Registry, group: str, version: str) -> JSON | None:
    kinds = registry.in_group_version(group, version)
    if kinds is None:
        return None
    resources = [entry for k in sorted(kinds, key=lambda k: k.plural) for entry in k.discovery()]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
