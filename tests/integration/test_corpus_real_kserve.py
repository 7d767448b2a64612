"""The corpus through KServe itself: the daemon's model of KServe against the real controller.

The daemon judges an InferenceService before KServe says anything: which runtime KServe's
selection (``GetSupportingRuntimes``) takes, or why it finds none; which Secret KServe's pod
webhook hands the storage-initializer (``CredentialBuilder``). The unit tables check those
functions on the corpus (tests/corpus) against what the corpus *says* KServe does. This test
asks KServe: one real-tier Sandbox (KServe's own manager v0.20.0 in RawDeployment mode with
its webhooks, Istio's sidecar injector, kube-controller-manager making the predictor pods),
every corpus object created over the wire as the admin, then per InferenceService:

* KServe's runtime verdict — ``status.servingRuntimeName`` / ``clusterServingRuntimeName``, or
  ``status.modelStatus.lastFailureInfo`` — against :func:`daemon.core.diagnosis.runtime.selection`
  on a World built from the same objects (as the unit table builds it);
* the storage-initializer KServe's pod webhook injected into the predictor pod (the Secret its
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` come from by ``secretKeyRef``,
  ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``) against
  :func:`daemon.core.diagnosis.credentials.s3_resolution`; for a model with a storage spec, the
  Secret and key its ``STORAGE_CONFIG`` comes from and the URI it downloads, against
  :func:`probes.credentials.resolve_storage_spec` — or, where KServe's pod webhook refuses the
  pod (a missing storage-config Secret or key), its refusal on the predictor Deployment
  (``ReplicaFailure``) against the error the daemon predicts.

KServe is right by definition: a disagreement is the daemon's bug (or the corpus's, when KServe
refuses a corpus object — its validating webhooks are live, so every admission is checked).

What is *not* created: the corpus's ``kserve/inferenceservice-config`` (KServe's live one runs
the manager; the test asserts its ``credentials`` section is the corpus's, so both sides read
the same credential configuration). Statuses are not written (KServe writes the
InferenceServices'; a PVC's phase matters to neither decision).

What KServe cannot decide here, named in :data:`NOT_RECONCILED` with the reason, never dropped
silently: a ModelMesh InferenceService (KServe's manager only initialises its conditions; the
ModelMesh controller, a separate install, places the model).

Pods are created by kube-controller-manager from KServe's Deployments and mutated by KServe's
and Istio's webhooks; the sandbox's simulated kubelet tries to run them (most cannot download
their model here) — only their spec is read. The corpus's ClusterServingRuntimes are
cluster-scoped: the seed has none, and the control plane's reset deletes them for the next user.

What this found (each now a corpus case and a unit table row): KServe v0.20 refuses the Alibi
explainer (c16, now ART); an IRSA ServiceAccount's ``s3-*`` annotations reach the pod (c17);
with two S3 secrets the pod gets the first's key pair and the last's settings (c36); only
``s3-usehttps: "0"`` is plain HTTP (c37); the defaulting webhook's protocol v2 for the older
``onnx`` key and the ``triton`` format (c38, c40); no protocol check for a named runtime when
the model sets none (c39). For the storage spec (c41-c49) it confirmed what KServe's source says:
with a type parameter and no key the default key is ``default_<type>``, and its absence is no
error (c46); with the type a parameter the bucket is never read from the storage-config JSON
(c48); the refusals' exact words (c43, c44, c47, c48).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.credentials import s3_resolution
from daemon.core.diagnosis.fields import meta
from daemon.core.diagnosis.runtime import selection
from daemon.core.discovery import discover
from daemon.core.findings import Code
from daemon.core.settings import SecretAccessSettings, Settings
from daemon.core.world import World
from probes.credentials import resolve_storage_spec
from sandbox.realcp import ControlPlane, api_call
from tests.corpus import Case, collection_path, load, shared_objects
from tests.integration.control_planes import make_sandbox
from tests.integration.daemon_fixtures import leaked_tasks

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

CASES = load()
SETTINGS = Settings(secrets=SecretAccessSettings(namespaces=("*",)))
NOW = 1_764_441_000.0
DECIDE_TIMEOUT = 60.0
POLL = 0.25
FIELD_MANAGER = "corpus"
ISVC_LABEL = "serving.kserve.io/inferenceservice"

NOT_RECONCILED = {
    "c18-modelmesh": "ModelMesh deployment mode: KServe's manager only initialises the conditions of "
                     "a ModelMesh InferenceService without a transformer; the ModelMesh controller (not "
                     "part of this install) selects its runtime and loads the model",
}

# KServe's failure reasons (lastFailureInfo.reason) → the daemon codes that may say the same.
# The daemon is more specific where KServe lumps causes together: a version no auto-selectable
# runtime lists, or only disabled runtimes auto-selecting the format, are NoSupportingRuntime
# to KServe.
AGREEING_CODES: dict[str, frozenset[Code]] = {
    "NoSupportingRuntime": frozenset({Code.NO_SERVING_RUNTIME, Code.RUNTIME_VERSION_UNSUPPORTED,
                                      Code.RUNTIME_DISABLED}),
    "RuntimeNotRecognized": frozenset({Code.NO_SERVING_RUNTIME}),
    "RuntimeDisabled": frozenset({Code.RUNTIME_DISABLED}),
}

# Creation order: what KServe reads when it reconciles (runtimes) or when its pod webhook runs
# (ServiceAccounts, Secrets) exists before the InferenceServices.
_ORDER = {"Namespace": 0, "ClusterServingRuntime": 1, "ServingRuntime": 1, "InferenceService": 3}


@dataclass(frozen=True, kw_only=True)
class Storage:
    """What the storage-initializer gets for S3 (None: not set)."""

    secret: str | None
    """The Secret both AWS_* keys come from (by secretKeyRef); None: no key pair injected."""
    endpoint_url: str | None
    region: str | None
    config: str | None = None
    """A storage spec's ``STORAGE_CONFIG``: ``<secret>/<key>`` (by secretKeyRef); None: not set."""
    uri: str | None = None
    """A storage spec's download URI (the storage-initializer's first argument); None: not compared."""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    runtime: str | None
    """``<namespace>/<name>`` or ``(cluster)/<name>``; None: no runtime."""
    failure: str | None
    """KServe: ``lastFailureInfo.reason``; the daemon: its finding's code."""
    storage: Storage | None
    """None: no storage-initializer (KServe), or nothing to compare (the daemon)."""
    refused: str | None = None
    """KServe: why its pod webhook refused the predictor pod (the Deployment's ReplicaFailure);
    the daemon: the error it predicts. None: the pod is created."""


@dataclass(frozen=True)
class Outcome:
    rejected: dict[str, str]
    """``kind namespace/name`` → KServe's (or the API server's) refusal."""
    verdicts: dict[str, Verdict]
    """Case name → what KServe decided."""
    credentials_config: dict[str, Any]


def _path(obj: Mapping[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"


def _label(obj: Mapping[str, Any]) -> str:
    m = obj["metadata"]
    return f"{obj['kind']} {m.get('namespace') + '/' if m.get('namespace') else ''}{m['name']}"


def _to_create() -> list[dict[str, Any]]:
    objs = [o for o in shared_objects() if o["kind"] != "ConfigMap"]
    objs += [o for c in CASES for o in c.objects]
    return sorted(({k: v for k, v in o.items() if k != "status"} for o in objs),
                  key=lambda o: _ORDER.get(str(o["kind"]), 2))


async def _create(api: ApiClient, objects: list[dict[str, Any]]) -> dict[str, str]:
    """Server-side apply each object (existing namespaces are left as they are); refusals kept."""
    rejected: dict[str, str] = {}
    for obj in objects:
        try:
            await api_call(api, "PATCH", _path(obj), obj, ctype="application/apply-patch+yaml",
                           query=[("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict")])
        except ApiException as exc:
            try:
                rejected[_label(obj)] = str(json.loads(exc.body or "{}").get("message") or exc.reason)
            except (ValueError, AttributeError):
                rejected[_label(obj)] = str(exc.body or exc.reason)
    return rejected


def _runtime_of(isvc: Mapping[str, Any]) -> Verdict | None:
    """KServe's runtime verdict from its status (None: not decided yet)."""
    st = isvc.get("status") or {}
    ns = isvc["metadata"]["namespace"]
    if st.get("servingRuntimeName"):
        return Verdict(runtime=f"{ns}/{st['servingRuntimeName']}", failure=None, storage=None)
    if st.get("clusterServingRuntimeName"):
        return Verdict(runtime=f"(cluster)/{st['clusterServingRuntimeName']}", failure=None, storage=None)
    reason = ((st.get("modelStatus") or {}).get("lastFailureInfo") or {}).get("reason")
    if reason in AGREEING_CODES:
        return Verdict(runtime=None, failure=str(reason), storage=None)
    # A custom container needs no runtime: KServe is done with it once it has built its
    # Deployment (it writes the predictor's condition for this generation).
    custom = "model" not in ((isvc.get("spec") or {}).get("predictor") or {})
    conds = {c.get("type") for c in st.get("conditions") or []}
    current = st.get("observedGeneration") == isvc["metadata"].get("generation")
    if custom and current and "PredictorReady" in conds:
        return Verdict(runtime=None, failure=None, storage=None)
    return None


def _storage_of(pod: Mapping[str, Any]) -> Storage | None:
    inits = [c for c in (pod.get("spec") or {}).get("initContainers") or []
             if c.get("name") == "storage-initializer"]
    if not inits:
        return None
    env = {e["name"]: e for e in inits[0].get("env") or []}

    def ref(name: str) -> str | None:
        return (((env.get(name) or {}).get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")

    key_id, secret_key = ref("AWS_ACCESS_KEY_ID"), ref("AWS_SECRET_ACCESS_KEY")
    assert key_id == secret_key, f"the key pair from two secrets: {key_id}, {secret_key}"
    config = (((env.get("STORAGE_CONFIG") or {}).get("valueFrom") or {}).get("secretKeyRef") or {})
    spec = "internal.serving.kserve.io/storage-spec" in ((pod.get("metadata") or {}).get("annotations") or {})
    return Storage(secret=secret_key,
                   endpoint_url=(env.get("AWS_ENDPOINT_URL") or {}).get("value") or None,
                   region=(env.get("AWS_DEFAULT_REGION") or {}).get("value") or None,
                   config=f"{config['name']}/{config['key']}" if config else None,
                   uri=str((inits[0].get("args") or [None])[0]) if spec else None)


def _refusal_of(deployment: Mapping[str, Any]) -> str | None:
    """Why pods of this Deployment are not created (its ``ReplicaFailure`` condition), if so."""
    for c in (deployment.get("status") or {}).get("conditions") or []:
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            return str(c.get("message") or c.get("reason") or "")
    return None


def _key(obj: Mapping[str, Any], name: str | None = None) -> str:
    return f"{obj['metadata']['namespace']}/{name or obj['metadata']['name']}"


async def _until(what: str, step: Callable[[], Awaitable[set[str]]]) -> None:
    """Poll ``step`` (cluster-wide lists, on the test side) until it reports nothing missing, for
    at most :data:`DECIDE_TIMEOUT`; else fail naming what is missing."""
    deadline = time.monotonic() + DECIDE_TIMEOUT
    while missing := await step():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {DECIDE_TIMEOUT:.0f} s still waiting for {what}: {sorted(missing)}")
        await asyncio.sleep(POLL)


async def _kserve_decides(api: ApiClient) -> dict[str, Verdict]:
    """Wait until KServe has decided every reconcilable case, then read its predictor pods."""
    keys = {c.key for c in CASES if c.name not in NOT_RECONCILED}
    decided: dict[str, Verdict] = {}

    async def runtimes() -> set[str]:
        body = await api_call(api, "GET", "/apis/serving.kserve.io/v1beta1/inferenceservices")
        for isvc in body.get("items") or []:
            if _key(isvc) in keys and (v := _runtime_of(isvc)) is not None:
                decided[_key(isvc)] = v
        return keys - set(decided)

    await _until("KServe's runtime verdicts", runtimes)
    # A predictor pod for every model KServe made a Deployment for (a runtime, or none needed),
    # or the refusal of its pod by KServe's pod webhook, on the Deployment.
    want = {k for k, v in decided.items() if v.failure is None}
    pods: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    selector = [("labelSelector", f"{ISVC_LABEL},component=predictor")]

    async def predictor_pods() -> set[str]:
        body = await api_call(api, "GET", "/api/v1/pods", query=selector)
        for pod in body.get("items") or []:
            pods.setdefault(_key(pod, pod["metadata"]["labels"][ISVC_LABEL]), pod)
        body = await api_call(api, "GET", "/apis/apps/v1/deployments", query=selector)
        for dep in body.get("items") or []:
            if (why := _refusal_of(dep)) is not None:
                refused[_key(dep, dep["metadata"]["labels"][ISVC_LABEL])] = why
        return want - set(pods) - set(refused)

    await _until("the predictor pods", predictor_pods)
    return {
        c.name: replace(decided[c.key], storage=_storage_of(pods[c.key]) if c.key in pods else None,
                        refused=refused.get(c.key) if c.key not in pods else None)
        for c in CASES if c.key in decided
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outcome(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outcome]:
    """The corpus created in one real-tier Sandbox and KServe's verdicts on it."""
    cp: ControlPlane = request.getfixturevalue("real_control_plane")
    work: Path = tmp_path_factory.mktemp("corpus-real")
    before = asyncio.all_tasks()
    async with make_sandbox("real", workdir=work / "sandbox", cp=cp) as sb:
        api = sb.new_api_client()
        try:
            cm = await api_call(api, "GET", "/api/v1/namespaces/kserve/configmaps/inferenceservice-config")
            rejected = await _create(api, _to_create())
            verdicts = await _kserve_decides(api)
            yield Outcome(rejected=rejected, verdicts=verdicts,
                          credentials_config=json.loads(cm["data"]["credentials"]))
        finally:
            await api.close()
    assert await leaked_tasks(before) == [], "tasks outlived the sandbox"


# -- the daemon's side ---------------------------------------------------------------------------

def _daemon(case: Case) -> Verdict:
    """The daemon's verdict for ``case`` from the same objects (World built as the unit table does)."""
    world = World.build([*shared_objects(), *case.objects])
    ctx = Pass(world=world, desired=[], drifts=[], observations=[], settings=SETTINGS, now=NOW)
    (cfg,) = [m for m in discover(world=world, desired=[], settings=SETTINGS).models if m.key == case.key]
    m = ctx.model(cfg)
    rt, code = selection(ctx, m)
    runtime = None if rt is None else f"{meta(rt).get('namespace') or '(cluster)'}/{meta(rt).get('name')}"
    spec = resolve_storage_spec(isvc=m.source or {}, secrets=_secrets(world, case.namespace),
                                kserve_config=ctx.configmap)
    if spec is not None:
        # KServe's storage spec: STORAGE_CONFIG and no AWS_* env (the storage-initializer sets
        # those itself from the JSON), whatever the ServiceAccount holds.
        storage = Storage(secret=None, endpoint_url=None, region=None,
                          config=f"{spec.secret_name}/{spec.key}" if spec.entry else None, uri=spec.uri)
        return Verdict(runtime=runtime, failure=code.value if code is not None else None, storage=storage,
                       refused=spec.kserve_error)
    res = s3_resolution(ctx, m)
    storage = Storage(
        secret=res.secret_name if res.problem is None else None,
        endpoint_url=res.endpoint_url,
        region=res.region,
    )
    return Verdict(runtime=runtime, failure=code.value if code is not None else None, storage=storage)


def _secrets(world: World, namespace: str) -> dict[str, Any]:
    return {str(meta(s).get("name")): s for s in world.list("Secret", namespace)}


# -- the comparisons -----------------------------------------------------------------------------

async def test_kserve_admits_every_corpus_object(outcome: Outcome) -> None:
    """KServe's validating webhooks (and the API server's schemas) accept the whole corpus."""
    assert outcome.rejected == {}


async def test_the_corpus_reads_kserves_credential_configuration(outcome: Outcome) -> None:
    """Both sides resolve credentials with the same configuration (the corpus's base.yaml)."""
    (cm,) = [o for o in shared_objects() if o["kind"] == "ConfigMap"]
    assert json.loads(cm["data"]["credentials"]) == outcome.credentials_config


async def test_every_case_is_decided_or_named(outcome: Outcome) -> None:
    assert set(outcome.verdicts) | set(NOT_RECONCILED) == {c.name for c in CASES}
    assert not set(outcome.verdicts) & set(NOT_RECONCILED)


RECONCILED = [c for c in CASES if c.name not in NOT_RECONCILED]


@pytest.mark.parametrize("case", RECONCILED, ids=[c.name for c in RECONCILED])
async def test_runtime_selection_agrees(outcome: Outcome, case: Case) -> None:
    kserve, daemon = outcome.verdicts[case.name], _daemon(case)
    assert daemon.runtime == kserve.runtime, (kserve, daemon)
    if kserve.failure is None:
        assert daemon.failure is None, (kserve, daemon)
    else:
        assert daemon.failure is not None and Code(daemon.failure) in AGREEING_CODES[kserve.failure], (
            kserve, daemon)


@pytest.mark.parametrize("case", RECONCILED, ids=[c.name for c in RECONCILED])
async def test_storage_credentials_agree(outcome: Outcome, case: Case) -> None:
    kserve, daemon = outcome.verdicts[case.name], _daemon(case)
    if kserve.storage is None:
        return  # no storage-initializer: no storageUri, a PVC mounted directly, or no pod at all
    assert daemon.storage is not None
    if daemon.storage.uri is None and kserve.storage.uri is not None:
        # A storage spec's URI the daemon cannot know without the secret's value (type, bucket).
        assert daemon.storage.config is not None, "an unknown URI is the JSON's: a STORAGE_CONFIG is read"
        daemon = replace(daemon, storage=replace(daemon.storage, uri=kserve.storage.uri))
    assert daemon.storage == kserve.storage, (kserve.storage, daemon.storage)


@pytest.mark.parametrize("case", RECONCILED, ids=[c.name for c in RECONCILED])
async def test_pod_refusals_agree(outcome: Outcome, case: Case) -> None:
    """KServe's pod webhook refuses the predictor pod exactly where the daemon says it will,
    with the error the daemon names (a storage spec's missing storage-config Secret or key)."""
    kserve, daemon = outcome.verdicts[case.name], _daemon(case)
    if kserve.failure is not None:
        return  # no runtime: no Deployment, no pod to refuse
    if daemon.refused is None:
        assert kserve.refused is None, kserve.refused
    else:
        assert kserve.refused is not None and daemon.refused in kserve.refused, (
            kserve.refused, daemon.refused)
