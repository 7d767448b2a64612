"""KServe's own samples applied to ``kserve-warden sandbox``, then ``check -o json`` with no settings
(issue 20, as it was seen: 17 of 20 samples were a critical ``model-wrong-format`` whose evidence
was the download error and whose remedy was XGBoost's).

The embedded sandbox (the stand-in KServe, kubelet and storage-initializer) holds the seed's healthy
model, KServe's ClusterServingRuntimes (tests/corpus/runtimes.yaml) and every sample of
tests/samples, unchanged, in one namespace. Its pods reach nothing outside loopback, so each sample's
storage-initializer fails as KServe v0.20's does there. Three more are KServe's samples re-pointed at
an HTTP store on loopback (a real aiohttp server the stand-in initializer downloads from): the
XGBoost iris sample with the trained iris model (healthy), the sklearn one at a missing file (404)
and the TorchServe one at a refused one (403).

On both control planes: the stand-in, and the real tier, where KServe v0.20's own manager and
webhooks take the samples (its defaulting webhook turns their older predictor keys into a model,
its selection picks the runtime, its pod webhook injects the storage-initializer, and its
controller copies the init container's failure into ``lastFailureInfo``), kube-controller-manager
makes the pods and the kubelet stand-in runs them.

``kserve-warden check -o json`` runs as a subprocess with no ``--config`` (the embedded defaults).
For each sample: exactly one finding above INFO, the one that names the true cause, with the
remedy words its scheme and runtime need; nothing above INFO for the healthy ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from sandbox import Sandbox, trained_model
from sandbox import world as seed
from tests.corpus import CORPUS
from tests.integration.control_planes import CONTROL_PLANES, make_sandbox
from tests.integration.daemon_fixtures import serve
from tests.integration.sandbox_wait import watch_until
from tests.samples import NAMESPACE, SAMPLES

pytestmark = [pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]

LOCAL_NS = "kserve-samples-local"
SETTLE_TIMEOUT = 90.0
ISVC_LABEL = "serving.kserve.io/inferenceservice"
Obj = dict[str, Any]


def _settled(isvc: Obj) -> bool:
    """KServe has said its last word for now: Ready, or a failure it recorded."""
    st = isvc.get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    if (conds.get("Ready") or {}).get("status") == "True":
        return True
    return bool(((st.get("modelStatus") or {}).get("lastFailureInfo") or {}).get("reason"))


@contextlib.asynccontextmanager
async def _store(model: bytes) -> AsyncIterator[str]:
    """An HTTP store on loopback: the iris model, a refusal (403), and 404 for anything else."""
    async def answer(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "model.json":
            return web.Response(body=model, content_type="application/octet-stream")
        if name == "refused.mar":
            return web.Response(status=403)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/models/{name}", answer)
    async with serve(app) as url:
        yield f"{url}/models"


def _repointed(sample_file: str, uri: str) -> Obj:
    """The sample, in the local namespace, downloading from ``uri`` instead."""
    (s,) = [s for s in SAMPLES if s.file == sample_file]
    isvc = s.isvc(LOCAL_NS)
    pred = isvc["spec"]["predictor"]
    impl = pred.get("model") or next(v for v in pred.values() if isinstance(v, dict) and "storageUri" in v)
    impl["storageUri"] = uri
    return isvc


# name in LOCAL_NS -> (the one finding above INFO, or None when healthy; remedy words)
LOCAL = {
    "xgboost-iris": (None, ()),
    "sklearn-iris": ("model-not-found", ("model.joblib",)),
    "torchserve": ("storage-access-denied", ("read access",)),
}


async def _apply_all(api: ApiClient, store: str) -> list[Obj]:
    runtimes = [d for d in yaml.safe_load_all((CORPUS / "runtimes.yaml").read_text()) if d]
    objects: list[Obj] = [
        *runtimes,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LOCAL_NS}},
        *(s.isvc() for s in SAMPLES),
        _repointed("s03-xgboost.yaml", f"{store}/model.json"),
        _repointed("s01-sklearn-v1.yaml", f"{store}/model.joblib"),
        _repointed("s09-torchserve-v1.yaml", f"{store}/refused.mar"),
    ]
    # The ServiceAccount a sample names is one its documentation has the user create (with a
    # Secret this cluster cannot have); without it the API server refuses the pod itself.
    named = {str(s.isvc()["spec"]["predictor"].get("serviceAccountName") or "") for s in SAMPLES} - {""}
    objects += [{"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": sa, "namespace": NAMESPACE}} for sa in sorted(named)]
    for obj in sorted(objects, key=lambda o: o["kind"] == "InferenceService"):
        await seed.apply(api, obj)
    return objects


async def _check(kubeconfig: Path) -> tuple[int, Obj, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", "--kubeconfig", str(kubeconfig), "--output", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out.decode() or "{}"), err.decode()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CONTROL_PLANES)
async def applied(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Sandbox, Obj, str]]:
    """The sandbox with the seed's healthy model and every sample settled, and check's JSON."""
    plane = str(request.param)
    cp = request.getfixturevalue("real_control_plane") if plane == "real" else None
    async with make_sandbox(plane, workdir=tmp_path_factory.mktemp("samples") / "sb", cp=cp) as sb:
        assert sb.api is not None
        await sb.apply_healthy_world()
        async with _store(await trained_model()) as store:
            await _apply_all(sb.api, store)
            custom = CustomObjectsApi(sb.api)
            unschedulable = {s.name for s in SAMPLES if plane == "real" and s.wants_gpu}
            for ns, names in ((NAMESPACE, {s.name for s in SAMPLES} - unschedulable), (LOCAL_NS, set(LOCAL)),
                              (seed.USER_NS, {"iris-model"})):
                await watch_until(
                    custom.list_namespaced_custom_object, "serving.kserve.io", "v1beta1", ns,
                    "inferenceservices", what=f"the InferenceServices of {ns} to settle",
                    pred=lambda objs, names=names: names <= {n for n, o in objs.items() if _settled(o)},
                    timeout=SETTLE_TIMEOUT)
            if unschedulable:  # their last word is the scheduler's, on the pod
                await watch_until(
                    CoreV1Api(sb.api).list_namespaced_pod, NAMESPACE, what="the GPU samples' pods refused",
                    pred=lambda objs: unschedulable <= {
                        str((o["metadata"].get("labels") or {}).get(ISVC_LABEL)) for o in objs.values()
                        if any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                               for c in (o.get("status") or {}).get("conditions") or [])},
                    timeout=SETTLE_TIMEOUT)
            code, doc, err = await _check(sb.kubeconfig_path)
        assert code == 1, err[-2000:]
        yield sb, doc, plane


def _per_isvc(doc: Obj) -> dict[str, list[Obj]]:
    return {f"{r['namespace']}/{r['name']}": list(r["findings"]) for r in doc["inferenceservices"]}


def _loud(findings: list[Obj]) -> list[Obj]:
    return [f for f in findings if f["severity"] != "info"]


def _brief(findings: list[Obj]) -> list[tuple[str, str, list[str]]]:
    return [(f["code"], f["severity"], f["evidence"][:2]) for f in findings]


async def test_each_sample_gets_the_one_finding_that_names_its_cause(
        applied: tuple[Sandbox, Obj, str]) -> None:
    _, doc, plane = applied
    per = _per_isvc(doc)
    wrong: dict[str, Any] = {}
    for s in SAMPLES:
        got = per.get(f"{NAMESPACE}/{s.name}", [])
        loud = _loud(got)
        if plane == "real" and s.wants_gpu:
            # The real scheduler, a tainted GPU node, no toleration in KServe's sample.
            taint = ("unschedulable-untolerated-taint", "critical")
            if [(f["code"], f["severity"]) for f in loud] != [taint]:
                wrong[s.file] = _brief(got)
            continue
        if [(f["code"], f["severity"]) for f in loud] != [(s.code, "critical")]:
            wrong[s.file] = _brief(got)
            continue
        f = loud[0]
        missing = [w for w in s.remedy if w not in f["remedy"]]
        if missing or not any("storage-initializer failed" in e for e in f["evidence"]):
            wrong[s.file] = {"remedy lacks": missing, "remedy": f["remedy"], "evidence": f["evidence"]}
        elif s.format != "xgboost" and "XGBoost" in f["remedy"]:
            wrong[s.file] = {"XGBoost advice": f["remedy"]}
    assert not wrong, json.dumps(wrong, indent=1)


async def test_loopback_samples_and_the_seed_model(applied: tuple[Sandbox, Obj, str]) -> None:
    """A real download: healthy stays quiet; a 404 is model-not-found with the runtime's files; a
    403 is the store's refusal."""
    _, doc, _plane = applied
    per = _per_isvc(doc)
    for name, (code, words) in LOCAL.items():
        loud = _loud(per.get(f"{LOCAL_NS}/{name}", []))
        if code is None:
            assert loud == [], (name, _brief(loud))
            continue
        assert [f["code"] for f in loud] == [code], (name, _brief(per.get(f"{LOCAL_NS}/{name}", [])))
        for w in words:
            assert w in loud[0]["remedy"], (name, w, loud[0]["remedy"])
    seed_model = _loud(per.get(f"{seed.USER_NS}/iris-model", []))
    assert seed_model == [], _brief(seed_model)
    assert not any(f["code"] == "model-wrong-format" for fs in per.values() for f in fs)
    assert _loud(doc.get("cluster_findings") or []) == []

