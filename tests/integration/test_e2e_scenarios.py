"""The seed's seven failures, end to end: the real daemon (``python -m daemon run``, a
subprocess talking to the sandbox over its kubeconfig) finds each one, heals it, says so in
its log, its Events and its metrics, and the predictor answers the canary correctly again.

One sandbox and one daemon serve the whole module (starting them is most of the cost); the
tests stay independent because each one

* starts from a *settled* world (the :func:`settled` fixture: the module's daemon running with
  the module's config, no active finding, the canary answered), and
* undoes at teardown whatever it injected (:class:`Faults`), however it ended.

Tests that need another daemon (a restart, a small CoreDNS budget, ``--dry-run``) stop the
module's daemon and start their own through :meth:`Rig.replace_daemon`; the next test's
:func:`settled` puts the module's daemon back. Every wait polls the API, the log or
``/metrics`` with a bounded timeout; there is no fixed sleep.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client

from sandbox import Sandbox
from sandbox.demo.scenarios import SCENARIOS
from tests.integration.control_planes import CONTROL_PLANES, make_sandbox
from tests.integration.daemon_fixtures import NS, Daemon, events, eventually, leaked_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

SCENARIO = {s.name: s for s in SCENARIOS}
ISVC = ("serving.kserve.io", "v1beta1", NS, "inferenceservices", "iris-model")
RUNTIME = ("serving.kserve.io", "v1alpha1", NS, "servingruntimes", "iris-fastapi-runtime")
POLICY = ("security.istio.io", "v1", "kubeflow", "authorizationpolicies", "minio-user-namespace-access")
COREDNS = "Deployment/kube-system/coredns"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTARTS = "warden.kserve.io/restarts"
LAST_RESTART = "warden.kserve.io/last-restart"
CANARY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}  # setosa: the real iris model answers class 0
WAIT = 30.0
MERGE_PATCH: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
DNS_WAIT = 45.0


# -- reading the world through the API ----------------------------------------------------------

async def _get_custom(api: client.ApiClient, args: tuple[str, str, str, str, str]) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = await client.CustomObjectsApi(api).get_namespaced_custom_object(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


async def _coredns(api: client.ApiClient) -> client.V1Deployment:
    return await client.AppsV1Api(api).read_namespaced_deployment("coredns", "kube-system")


async def canary_prediction(api: client.ApiClient, *, proxy: str | None = None) -> list[Any] | None:
    """What the predictor at the ISVC's ``status.address.url`` answers for setosa (None: no answer).

    ``proxy``: the sandbox's cluster network (on the real control plane the address is KServe's
    in-cluster Service URL, reached as the daemon reaches it)."""
    isvc = await _get_custom(api, ISVC) or {}
    url = ((isvc.get("status") or {}).get("address") or {}).get("url")
    if not url:
        return None
    try:
        async with aiohttp.ClientSession() as s, s.post(
                f"{url}/v1/models/iris-model:predict", json=CANARY, proxy=proxy,
                timeout=aiohttp.ClientTimeout(total=2)) as r:
            if r.status != 200:
                return None
            body = await r.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    preds = body.get("predictions")
    return list(preds) if isinstance(preds, list) else None


async def canary_ok(api: client.ApiClient, sb: Sandbox) -> bool:
    return await canary_prediction(api, proxy=sb.clusternet.url if sb.clusternet else None) == [0]


async def warden_events(api: client.ApiClient, *, reason: str | None = None,
                        since: float = 0.0) -> list[dict[str, Any]]:
    """kserve-warden's Events (with this reason), last seen at or after ``since`` (Unix time)."""
    items = await events(api)
    # Event times have whole seconds: compare against the second ``since`` fell in.
    floor = math.floor(since)
    return [e for e in items
            if (e.get("source") or {}).get("component") == "kserve-warden"
            and (reason is None or e.get("reason") == reason)
            and _ts(e.get("lastTimestamp")) >= floor]


async def event_counts(api: client.ApiClient) -> dict[str, int]:
    return {e["metadata"]["name"]: int(e.get("count") or 1) for e in await warden_events(api)}


def _ts(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# -- what "healed" means, per scenario ----------------------------------------------------------

State = Callable[[client.ApiClient], Awaitable[Any]]


async def _secret_annotations(api: client.ApiClient) -> dict[str, str]:
    ann = ((await _get_custom(api, ISVC) or {}).get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in ann.items() if "secret" in k.lower()}


async def _sidecar_annotation(api: client.ApiClient) -> str | None:
    ann = ((await _get_custom(api, ISVC) or {}).get("metadata") or {}).get("annotations") or {}
    value = ann.get("sidecar.istio.io/inject")
    return None if value is None else str(value)


async def _runtime_formats(api: client.ApiClient) -> list[str] | None:
    sr = await _get_custom(api, RUNTIME)
    return None if sr is None else [f.get("name") for f in sr["spec"].get("supportedModelFormats") or []]


async def _policy_rules(api: client.ApiClient) -> Any:
    pol = await _get_custom(api, POLICY)
    return None if pol is None else pol.get("spec")


async def _pull_secrets(api: client.ApiClient) -> list[str]:
    sa = await client.CoreV1Api(api).read_namespaced_service_account("iris-sa", NS)
    return [s.name for s in sa.image_pull_secrets or []]


async def _restarted_at(api: client.ApiClient) -> str | None:
    ann = (await _coredns(api)).spec.template.metadata.annotations or {}
    return ann.get(RESTARTED_AT)


@dataclass(frozen=True, kw_only=True)
class Heal:
    """How one injected failure is healed: the action expected, and the state it puts back."""

    action: str
    state: State
    """Read through the API before the injection and after the heal."""
    same: bool = True
    """True: the heal restores the state read before (an object re-applied, an annotation back);
    False: the heal changes it (CoreDNS's ``restartedAt``)."""


HEALS: dict[str, Heal] = {
    "no-serving-runtime": Heal(action="apply", state=_runtime_formats),
    "storage-credentials": Heal(action="apply", state=_secret_annotations),
    "dns-timeout": Heal(action="restart-coredns", state=_restarted_at, same=False),
    "mesh-policy": Heal(action="apply", state=_policy_rules),
    "sidecar-disabled": Heal(action="remove-annotation", state=_sidecar_annotation),
    "image-pull": Heal(action="apply", state=_pull_secrets),
}


# -- the rig: one sandbox, one daemon at a time -------------------------------------------------

def write_config(sb: Sandbox, path: Path, *, dns_probe: dict[str, Any] | None = None,
                 **remediation: Any) -> Path:
    """The sandbox's warden config with ``remediation`` (and DNS probe) settings overridden."""
    cfg = sb.warden_config()
    cfg["remediation"] = {**cfg["remediation"], **remediation}
    cfg["probes"]["dns"] = {**cfg["probes"]["dns"], **(dns_probe or {})}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Rig:
    sb: Sandbox
    api: client.ApiClient
    cfg: Path
    workdir: Path
    daemon: Daemon
    started: int = 0

    def new_daemon(self, *, config: Path | None = None, dry_run: bool = False) -> Daemon:
        self.started += 1
        d = Daemon(config=config or self.cfg, kubeconfig=self.sb.kubeconfig_path,
                   name=f"warden-{self.started}")
        d.extra_args = ["--dry-run"] if dry_run else []
        return d

    async def replace_daemon(self, *, config: Path | None = None, dry_run: bool = False) -> Daemon:
        """Stop the running daemon (SIGTERM: it releases the Lease), start another, wait until it runs."""
        await self.stop_daemon()
        d = self.new_daemon(config=config, dry_run=dry_run)
        await d.start()
        self.daemon = d
        # A dry-run daemon writes no Lease, so it is "up" once /metrics answers.
        await eventually(lambda: _up(d, leader=not dry_run), timeout=WAIT, interval=0.05,
                         what=f"{d.name} up")
        return d

    async def stop_daemon(self) -> None:
        if self.daemon.proc is not None and self.daemon.proc.returncode is None:
            d = self.daemon
            code = await d.stop()
            assert code == 0, f"{d.name} exited {code} on SIGTERM; its log ends: {d.raw[-8:]}"

    @property
    def is_default(self) -> bool:
        d = self.daemon
        return d.config == self.cfg and not d.extra_args and d.proc is not None and d.proc.returncode is None


async def _up(d: Daemon, *, leader: bool) -> bool:
    if leader:
        return await d.sample("warden_leader") == 1.0
    return bool(await d.series("warden_leader"))


async def active_findings(d: Daemon) -> dict[str, float]:
    return {lab["code"]: v for lab, v in await d.series("warden_findings") if v > 0}


async def converged(rig: Rig) -> bool:
    return (not rig.sb.dns.degraded and not await active_findings(rig.daemon)
            and await canary_ok(rig.api, rig.sb))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CONTROL_PLANES)
async def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    """The module's sandbox and daemon, on the stand-in and on the real control plane."""
    work = tmp_path_factory.mktemp("e2e")
    before = asyncio.all_tasks()
    plane = str(request.param)
    cp = request.getfixturevalue("real_control_plane") if plane == "real" else None
    async with make_sandbox(plane, workdir=work / "sandbox", cp=cp) as sb:
        # A CoreDNS budget large enough that the tests' restarts never meet it (the flapping
        # test uses its own small one); everything else as `kserve-warden sandbox` writes it.
        cfg = write_config(sb, work / "warden.yaml",
                           budgets={"restart-coredns": {"max_actions": 50, "window_seconds": 3600}})
        api = sb.new_api_client()
        r = Rig(sb=sb, api=api, cfg=cfg, workdir=work,
                daemon=Daemon(config=cfg, kubeconfig=sb.kubeconfig_path, name="warden-0"))
        try:
            await r.replace_daemon()
            yield r
        finally:
            await r.stop_daemon()
            await api.close()
    assert await leaked_tasks(before) == [], "tasks outlived the sandbox and the daemon"


@dataclass
class Faults:
    sb: Sandbox
    injected: list[str] = field(default_factory=list)

    async def inject(self, name: str) -> float:
        """Inject a seed failure; returns the wall-clock time just before (Event times are wall-clock)."""
        self.injected.append(name)
        t = time.time()
        await self.sb.inject(name)
        return t


@pytest_asyncio.fixture(loop_scope="module")
async def faults(rig: Rig) -> AsyncIterator[Faults]:
    """A settled world with the module's daemon; at teardown every injected failure is undone."""
    if not rig.is_default:
        await rig.replace_daemon()
    await eventually(lambda: converged(rig), timeout=WAIT, interval=0.05, what="a settled world")
    f = Faults(sb=rig.sb)
    try:
        yield f
    finally:
        for name in reversed(f.injected):
            await rig.sb.undo(name)


# -- waiting on the daemon ----------------------------------------------------------------------

async def found(d: Daemon, codes: tuple[str, ...], *, since: int, timeout: float = WAIT) -> dict[str, Any]:
    """The first ``finding`` line about one of ``codes`` logged since line ``since``."""
    def hit() -> bool:
        return any(ln.get("code") in codes for ln in d.logged("finding", since=since))
    try:
        await eventually(hit, timeout=timeout, interval=0.02, what=f"finding {'/'.join(codes)}")
    except AssertionError as exc:
        seen = sorted({(ln["code"], ln["subject"]) for ln in d.logged("finding", since=since)})
        raise AssertionError(f"{exc}; found instead: {seen}") from None
    return next(ln for ln in d.logged("finding", since=since) if ln.get("code") in codes)


async def logged(d: Daemon, event: str, *, since: int, timeout: float = WAIT, **match: Any) -> None:
    """Wait for a log line with this ``event`` and these fields, logged since line ``since``."""
    await eventually(lambda: bool(d.logged(event, since=since, **match)), timeout=timeout, interval=0.02,
                     what=f"{event!r} {match} in {d.name}'s log")


async def healed(rig: Rig, code: str, *, since: int, timeout: float = WAIT) -> None:
    """The finding logged as cleared, no longer in ``warden_findings``, the canary answered right."""
    d = rig.daemon

    async def ok() -> bool:
        return (bool(d.logged("finding cleared", since=since, code=code))
                and code not in await active_findings(d) and await canary_ok(rig.api, rig.sb))

    await eventually(ok, timeout=timeout, interval=0.05, what=f"{code} healed")


async def heal_count(d: Daemon, code: str) -> float:
    return await d.sample("warden_heal_duration_seconds_count", code=code)


# -- the seven scenarios ------------------------------------------------------------------------

@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if s.auto_heal])
async def test_seed_failure_is_found_and_healed(rig: Rig, faults: Faults, name: str) -> None:
    sc, heal, d = SCENARIO[name], HEALS[name], rig.daemon
    code = sc.findings[0]
    before = await heal.state(rig.api)
    acts_before = await d.sample("warden_remediations_total", action=heal.action, result="success")
    heals_before = await heal_count(d, code)
    mark = len(d.lines)
    t0 = await faults.inject(name)

    line = await found(d, sc.findings, since=mark, timeout=DNS_WAIT if name == "dns-timeout" else WAIT)
    assert line["code"] == code, f"{name} was diagnosed as {line['code']}, expected {code}"
    assert line["evidence"] and line["explanation"] and line["remedy"]
    await healed(rig, code, since=mark, timeout=DNS_WAIT if name == "dns-timeout" else WAIT)

    # The healed state, read back through the API.
    after = await heal.state(rig.api)
    if heal.same:
        assert after == before, f"{name}: not restored ({before!r} -> {after!r})"
    else:
        assert after is not None and after != before, f"{name}: {RESTARTED_AT} unchanged"
        assert not rig.sb.dns.degraded
    acted = [ln for ln in d.logged("acted", since=mark, finding=code) if ln["result"] == "success"]
    assert [ln["action"] for ln in acted] == [heal.action] * len(acted) and acted, acted

    # Metrics over HTTP: the remediation counted, the finding cleared, the heal timed. A finding
    # about one InferenceService leaves no series behind (bounded); a cluster-wide one reads 0.
    assert await d.sample("warden_remediations_total", action=heal.action, result="success") > acts_before
    # On the real control plane KServe rolls back the pod the failure made after the heal: the
    # probe pass after that clears what it left, so the series is awaited, not read once.
    async def cleared() -> bool:
        left = {(lab["namespace"], lab["inferenceservice"]): v for lab, v in await d.series("warden_findings")
                if lab["code"] == code}
        return all(v == 0 and (ns, isvc) == ("", "") for (ns, isvc), v in left.items())

    await eventually(cleared, timeout=WAIT, interval=0.1, what=f"{code}: its finding series cleared")
    assert code not in await active_findings(d)
    assert await heal_count(d, code) > heals_before

    # The Kubernetes Events: the finding (Warning) and what was done about it, reason = the code.
    evs = await warden_events(rig.api, reason=code, since=t0)
    assert {e["type"] for e in evs} >= {"Warning", "Normal"}, evs
    assert await canary_prediction(rig.api, proxy=rig.sb.clusternet.url if rig.sb.clusternet else None) == [0]


async def test_model_path_is_found_with_its_remedy_and_left_to_a_person(rig: Rig, faults: Faults) -> None:
    sc, d = SCENARIO["model-path"], rig.daemon
    assert not sc.auto_heal
    mark = len(d.lines)
    t0 = await faults.inject("model-path")
    line = await found(d, sc.findings, since=mark)
    code = line["code"]
    assert code == sc.findings[0]
    assert "iris/model" in line["remedy"] and line["evidence"]

    def held() -> bool:
        return any(ln["verdict"] == "human" for ln in d.logged("decision", since=mark, finding=code))

    await eventually(held, timeout=WAIT, what="the decision to leave it to a person")
    assert (await active_findings(d)).get(code, 0) >= 1
    assert await warden_events(rig.api, reason=code, since=t0)

    # A person applies the remedy (the model back where the storageUri points).
    await rig.sb.undo("model-path")
    await healed(rig, code, since=mark)
    assert d.logged("acted", since=mark, finding=code) == [], "the daemon acted on the model path"


# -- beyond one failure at a time ---------------------------------------------------------------

async def test_dns_and_policy_broken_at_once_are_both_healed(rig: Rig, faults: Faults) -> None:
    d = rig.daemon
    names = ("dns-timeout", "mesh-policy")
    before = {n: await HEALS[n].state(rig.api) for n in names}
    mark = len(d.lines)
    for n in names:
        await faults.inject(n)
    for n in names:
        await found(d, SCENARIO[n].findings, since=mark, timeout=DNS_WAIT)
    for n in names:
        await healed(rig, SCENARIO[n].findings[0], since=mark, timeout=DNS_WAIT)
    assert await _policy_rules(rig.api) == before["mesh-policy"]
    assert await _restarted_at(rig.api) != before["dns-timeout"]
    done = {(ln["action"], ln["target"]) for ln in d.logged("acted", since=mark, result="success")}
    assert ("restart-coredns", COREDNS) in done
    assert ("apply", "AuthorizationPolicy/kubeflow/minio-user-namespace-access") in done


async def test_failure_injected_while_the_daemon_is_down_is_healed_after_restart(
        rig: Rig, faults: Faults) -> None:
    before = await _runtime_formats(rig.api)
    await rig.stop_daemon()
    await faults.inject("no-serving-runtime")
    assert await _runtime_formats(rig.api) is None
    d = await rig.replace_daemon()
    await found(d, ("no-serving-runtime",), since=0)
    await healed(rig, "no-serving-runtime", since=0)
    assert await _runtime_formats(rig.api) == before
    assert d.logged("acted", finding="no-serving-runtime", result="success")


async def test_flapping_dns_never_restarts_coredns_beyond_the_budget(rig: Rig, faults: Faults) -> None:
    # Budget: one restart per 10 min; probes twice as often as the module's, to flap faster.
    cfg = write_config(rig.sb, rig.workdir / "budget-1.yaml", backoff_initial_seconds=0.0,
                       budgets={"restart-coredns": {"max_actions": 1, "window_seconds": 600}},
                       dns_probe={"period_seconds": 0.5, "timeout_seconds": 0.25})
    await rig.stop_daemon()
    # A clean history: the budget counts restarts recorded on the Deployment (earlier tests made some).
    await client.AppsV1Api(rig.api).patch_namespaced_deployment(
        "coredns", "kube-system", {"metadata": {"annotations": {RESTARTS: None, LAST_RESTART: None}}},
        **MERGE_PATCH)
    d = await rig.replace_daemon(config=cfg)
    dns = rig.sb.dns
    faults.injected.append("dns-timeout")  # undone at teardown whatever happens

    def restarts_logged() -> int:
        return len(d.logged("acted", action="restart-coredns"))

    async def blip() -> None:
        """Degraded until the daemon sees one bad probe, then healthy again (usually below the
        hysteresis; a query in flight at the switch can make it two, and a restart)."""
        mark = len(d.lines)
        dns.degraded = True
        await found(d, ("dns-latency-high",), since=mark)
        dns.degraded = False
        await logged(d, "finding cleared", since=mark, code="dns-latency-high")

    async def outage() -> None:
        """Degraded until the daemon restarts CoreDNS or says why it does not."""
        mark = len(d.lines)
        dns.degraded = True

        def decided() -> bool:
            return bool(d.logged("acted", since=mark, action="restart-coredns")
                        or d.logged("decision", since=mark, action="restart-coredns", verdict="budget"))

        await eventually(decided, timeout=DNS_WAIT, what="a restart, or the budget holding it back")
        dns.degraded = False
        await logged(d, "finding cleared", since=mark, code="dns-latency-high")

    async def rolled_out() -> bool:
        # Not the Deployment's observedGeneration: on the real control plane the deployment
        # controller sets it as soon as it sees the restart, before the simulated rollout has
        # healed the DNS server; that heal would then land inside the next flap and end it.
        assert rig.sb.coredns is not None
        return rig.sb.coredns.rolled_out(await _restarted_at(rig.api))

    for flap in (blip, outage, blip, outage, blip):
        # A restart's rollout heals the DNS server when it finishes: let it finish first, so
        # that it does not end the next flap by itself.
        await eventually(rolled_out, timeout=WAIT, what="CoreDNS rolled out")
        await flap()

    assert restarts_logged() == 1
    ann = (await _coredns(rig.api)).metadata.annotations or {}
    assert len([s for s in ann.get(RESTARTS, "").split(",") if s]) == 1, ann
    held = d.logged("decision", action="restart-coredns", verdict="budget")
    assert held and all("budget" in ln["why"] for ln in held), held
    assert await d.sample("warden_remediation_held_total", action="restart-coredns", verdict="budget") >= 1


# -- dry-run --------------------------------------------------------------------------------------

WRITABLE = (
    "/api/v1/serviceaccounts", "/api/v1/secrets", "/api/v1/configmaps", "/apis/apps/v1/deployments",
    "/apis/serving.kserve.io/v1alpha1/servingruntimes", "/apis/serving.kserve.io/v1beta1/inferenceservices",
    "/apis/security.istio.io/v1/authorizationpolicies", "/apis/coordination.k8s.io/v1/leases",
)


async def written_state(rig: Rig) -> dict[str, Any]:
    """Every object the daemon could write, as a write would change it.

    Status and ``resourceVersion`` are left out: the simulated controllers keep updating
    the InferenceService's status while its predictor restarts, and that is not the daemon.
    What a controller owns (an ``ownerReferences`` controller: KServe's predictor Deployment on
    the real control plane, which KServe rewrites when the InferenceService's annotations change)
    counts only by the daemon's own ``managedFields`` entries: any write of the daemon's is there.
    """
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=rig.sb.api_auth_headers(),
                                     connector=aiohttp.TCPConnector(ssl=rig.sb.api_ssl())) as s:
        for path in WRITABLE:
            async with s.get(rig.sb.api_url + path) as r:
                items = (await r.json()).get("items") or []
            for o in items:
                if path.endswith("/leases") and o["metadata"].get("namespace") == "kube-system":
                    continue  # a real kube-apiserver renews its own identity Lease there
                meta = dict(o["metadata"])
                meta.pop("resourceVersion", None)
                meta["managedFields"] = [m for m in meta.get("managedFields") or []
                                         if m.get("manager") == "kserve-warden"]
                key = f"{path} {meta.get('namespace')}/{meta['name']}"
                if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
                    out[key] = {"managedFields": meta["managedFields"]}
                    continue
                body = {k: v for k, v in o.items() if k not in ("metadata", "status")}
                out[key] = body | {"metadata": meta}
    return out


# One failure at a time, each undone by hand (as a person would fix it) before the next,
# because a dry-run daemon heals nothing and some failures hide others while they last (the
# bucket listing that shows a model at the wrong path needs the model's credentials and the
# mesh's permission). The last two leave pods behind that only a heal would recreate (created
# without a pull secret, or without the sidecar), so their finding outlives the undo.
DRY_RUN_ORDER = ("storage-credentials", "mesh-policy", "no-serving-runtime", "model-path", "dns-timeout",
                 "image-pull", "sidecar-disabled")
LEAVES_PODS = ("image-pull", "sidecar-disabled")


async def test_dry_run_finds_everything_and_changes_nothing(rig: Rig, faults: Faults) -> None:
    assert sorted(DRY_RUN_ORDER) == sorted(SCENARIO)
    events_before = await event_counts(rig.api)
    d = await rig.replace_daemon(dry_run=True)
    for name in DRY_RUN_ORDER:
        mark = len(d.lines)
        await faults.inject(name)
        before = await written_state(rig)
        code = (await found(d, SCENARIO[name].findings, since=mark, timeout=DNS_WAIT))["code"]
        if name in HEALS:
            await logged(d, "acted", since=mark, timeout=DNS_WAIT, action=HEALS[name].action)
        changed = _changed(before, await written_state(rig))
        assert changed == [], f"a dry-run daemon changed {changed} ({name})"
        assert rig.sb.dns.degraded == (name == "dns-timeout"), "CoreDNS restarted by a dry-run daemon"
        await rig.sb.undo(name)
        if name not in LEAVES_PODS:
            await logged(d, "finding cleared", since=mark, code=code)
    assert {ln["result"] for ln in d.logged("acted")} == {"dry-run"}
    assert await d.sample("warden_remediations_total", action="apply", result="success") == 0
    assert await event_counts(rig.api) == events_before, "a dry-run daemon recorded Events"


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
