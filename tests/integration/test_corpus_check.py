"""The whole corpus through ``kserve-warden check``, against the sandbox API server.

Every object of tests/corpus (the InferenceServices with their namespaces, ServiceAccounts,
secrets, runtimes, policies, stores and claims, KServe's ClusterServingRuntimes, its
ConfigMap, istiod) is created over the wire in the embedded API server, statuses through the
``status`` subresource as a controller would write them. Then ``kserve-warden check --output
json`` runs as a subprocess with a settings file that narrows nothing (every namespace, Secrets
readable everywhere, no desired state) and its DNS probe pointed at an in-process DNS server.
Each InferenceService must get exactly the findings its case expects, as ``diagnose()`` gives
them in the unit table test — except what only the probes add from here: the storage probe
cannot resolve the corpus's in-cluster store names on loopback, which the diagnosis reports as
"not checked" (the probe runs outside the cluster) — tolerated, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client

from sandbox.apiserver.registry import ResourceKind
from sandbox.dns import DnsServer
from sandbox.kubeconfig import write_kubeconfig
from tests.corpus import collection_path, load, shared_objects
from tests.integration.apiserver.objects import PEER_AUTHENTICATION_CRD
from tests.integration.daemon_fixtures import api_client, api_server

# The sandbox serves neither out of the box: PVCs are registered as a built-in kind, Istio's
# PeerAuthentication is created as a CRD (as istioctl install would).
_PVC_KIND = ResourceKind(group="", version="v1", plural="persistentvolumeclaims",
                         singular="persistentvolumeclaim", kind="PersistentVolumeClaim", namespaced=True,
                         short_names=("pvc",), status_subresource=True)


async def _call(api: client.ApiClient, method: str, path: str, body: dict[str, Any],
                content_type: str = "application/json") -> None:
    resp = await api.call_api(path, method, header_params={"Content-Type": content_type,
                                                            "Accept": "application/json"},
                              body=body, auth_settings=["BearerToken"], _preload_content=False,
                              _return_http_data_only=True)
    text = await resp.read()
    assert resp.status < 300, f"{method} {path}: {resp.status} {text[:300]!r}"


async def _create_all(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    await _call(api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                PEER_AUTHENTICATION_CRD)
    order = {"Namespace": 0, "CustomResourceDefinition": 0}
    for obj in sorted(objects, key=lambda o: order.get(str(o["kind"]), 1)):
        body = {k: v for k, v in obj.items() if k != "status"}
        await _call(api, "POST", collection_path(obj), body)
        if "status" in obj:  # what a controller writes, through the status subresource
            path = f"{collection_path(obj)}/{obj['metadata']['name']}/status"
            await _call(api, "PATCH", path, {"status": obj["status"]}, "application/merge-patch+json")


async def _check(kubeconfig: Path, config: Path) -> tuple[int, dict[str, Any], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", "--config", str(config), "--kubeconfig", str(kubeconfig),
        "--output", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out.decode() or "{}"), err.decode()


def _per_isvc(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    if "inferenceservices" in doc:
        return {f"{r['namespace']}/{r['name']}": list(r["findings"]) for r in doc["inferenceservices"]}
    out: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        if f.get("inferenceservice"):
            out.setdefault(f["inferenceservice"], []).append(f)
    return out


def _from_storage_probe_only(f: dict[str, Any]) -> bool:
    """A store whose in-cluster name does not resolve here: the probe runs outside any cluster."""
    return f["code"] == "not-checked" and f["severity"] == "info" and any(
        "does not resolve where the probe runs" in str(e) for e in f["evidence"])


async def test_every_corpus_case_gets_its_findings_from_check(tmp_path: Path) -> None:
    cases = load()
    objects = [*shared_objects(), *(o for c in cases for o in c.objects)]
    dns = DnsServer()
    await dns.start()
    try:
        async with api_server() as server:
            server.registry.add(_PVC_KIND)
            async with api_client(server.url) as api:
                await _create_all(api, objects)
            kubeconfig = tmp_path / "kubeconfig"
            write_kubeconfig(kubeconfig, server=server.url)
            (tmp_path / "desired").mkdir()
            config = tmp_path / "warden.yaml"
            host, port = dns.address
            config.write_text(yaml.safe_dump({
                "secrets": {"namespaces": ["*"]},
                "desired": {"dir": str(tmp_path / "desired")},
                "probes": {"dns": {"nameserver": host, "port": port, "timeout_seconds": 2.0, "queries": 2},
                           "storage": {"timeout_seconds": 2.0}},
            }))
            code, doc, err = await _check(kubeconfig, config)
    finally:
        await dns.stop()
    assert code == 1, err  # the corpus has broken cases
    per = _per_isvc(doc)
    assert {c.key for c in cases} <= set(per) or "inferenceservices" not in doc, sorted(per)
    wrong = {}
    for c in cases:
        got = [f for f in per.get(c.key, []) if not _from_storage_probe_only(f)]
        pairs = tuple(sorted((f["code"], f["severity"]) for f in got))
        if pairs != c.expect:
            wrong[c.name] = {"expected": c.expect, "got": [(f["code"], f["severity"], f["evidence"][:2])
                                                           for f in per.get(c.key, [])]}
    assert not wrong, json.dumps(wrong, indent=1, default=str)
    cluster_wide = [f for f in doc["findings"] if not f.get("inferenceservice")]
    assert cluster_wide == [], cluster_wide
