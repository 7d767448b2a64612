"""The reconciler: watches and probe timers in, named findings and guarded actions out.

Level-based, like a controller-runtime reconciler: a key says *what to look at*, never
*what happened*; each reconcile reads the current state from the watch caches and decides
from scratch. Two kinds of key go through one deduping :class:`~daemon.process.workqueue.WorkQueue`:

``PASS``
    The observe pass. Every watch event and every probe observation adds it (a burst
    collapses into one pass). It builds a :class:`~daemon.core.world.World` from the caches,
    renders the desired manifests for it, diffs, diagnoses and plans (all pure), then
    publishes: ``warden_findings`` and the other gauges, one JSON log line per finding that
    appeared or changed (code, severity, subject, evidence, explanation, remedy), one per
    decision that changed (verdict and why), Events on the objects concerned. On the leader,
    every finding with an allowed decision is queued under its own key.
``finding:<code> <subject>``
    Act on one finding. Re-evaluates (level-based: the cache may have moved since the pass),
    takes the decisions ``plan()`` made for that finding and carries out its chain of actions
    *in order* (apply the ServiceAccount, then delete the stuck pod), each recorded in the
    :class:`~daemon.core.ledger.Ledger` (cooldown, budget, verify-after). The queue never runs a
    key twice at once, and an action already in flight for another finding is skipped, so
    nothing is done twice concurrently; an action another finding completed since the chain was
    evaluated is skipped too (a chain's later steps are planned before its earlier ones go out);
    the ledger stops repeats over time.

Only the leader acts (and writes Events); every replica observes, diagnoses and exports
metrics. Retries: :func:`daemon.core.backoff.retry_delay` is the one function that decides every
delay (429 → Retry-After, 5xx/dropped → jittered exponential back-off, held-back decision →
when its back-off/budget ends). A delay it gives is a floor, not a hint: the finding's key is
not acted on before it, even when a watch event or another pass asks for it sooner (a 429's
``Retry-After: 10`` means no write for 10 s, "never sooner").
A periodic full resync re-queues ``PASS`` in case anything was missed.
:meth:`Reconciler.shutdown` stops acting, lets in-flight work finish within a deadline and
cancels the rest.

Server-side apply first goes out without ``force``: when another field manager owns a field the
desired state sets (someone ran ``kubectl edit``/``annotate``), the API refuses with a 409 naming
that manager. With ``remediation.take_back_fields`` (the default, Argo CD self-heal semantics) the
daemon logs who held which fields and re-applies with ``force``: it takes back only the fields
the desired state declares, never another manager's other fields. This covers a derived
secret too (a hand-edited ``minio-s3-secret`` gets its declared keys back). With it off, the daemon
reports the conflict (log, Warning Event with the exact command to hand the fields back) and
does not ask again until that object changes.

Nothing claims a heal that did not happen: a finding that disappears while another finding now
names the same object was *superseded*, not resolved: its "finding cleared" log line says
``superseded_by``, and its "resolved" Event and heal time wait until the object has no finding
at all; an
action the API refused is logged, evented and published as ``refused`` until its object changes.

The CoreDNS restart budget survives a daemon restart: each restart writes its time (and the
recent ones) as annotations on the coredns Deployment, and :meth:`Reconciler.restore_ledger`
reads them back into the ledger at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from daemon.core.actions import Action, ActionKind, Decision, Verdict
from daemon.core.backoff import Result, retry_delay
from daemon.core.desired import DesiredState, copy_manifest, index_by_ref
from daemon.core.diagnosis import diagnose
from daemon.core.diff import Drift, diff_all
from daemon.core.errors import ConflictError, KubeError
from daemon.core.findings import Finding
from daemon.core.ledger import Ledger
from daemon.core.logs import get_logger
from daemon.core.objects import ObjectRef
from daemon.core.plan import fingerprint, plan, with_escalations
from daemon.core.settings import Settings
from daemon.core.timestamps import parse_time, rfc3339
from daemon.core.world import World
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer
from daemon.process.metric_names import HELD_VERDICTS
from daemon.process.metrics import WardenMetrics
from daemon.process.probing import ObservationStore
from daemon.process.server import HealthState
from daemon.process.workqueue import QueueShutDown, WorkQueue
from probes.observation import Observation

log = get_logger("loop")

PASS: Final = "pass"
FINDING_PREFIX: Final = "finding:"
LAST_RESTART_ANNOTATION: Final = "warden.kserve.io/last-restart"
RESTARTS_ANNOTATION: Final = "warden.kserve.io/restarts"
"""Comma-separated RFC 3339 times of recent CoreDNS restarts by the daemon (the budget window)."""


def finding_work_key(f: Finding) -> str:
    return f"{FINDING_PREFIX}{f.code.value} {f.subject}"


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One pure pass over a snapshot: what is wrong and what to do about it."""

    now: float
    world: World
    manifests: list[dict[str, Any]]
    drifts: list[Drift]
    findings: list[Finding]
    decisions: list[Decision]

    @property
    def drifted(self) -> int:
        return sum(1 for d in self.drifts if d.drifted)

    def decisions_for(self, key: str) -> list[Decision]:
        return [d for d in self.decisions if d.finding_key is not None
                and f"{FINDING_PREFIX}{d.finding_key[0]} {d.finding_key[1]}" == key]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What carrying out one decision did."""

    action: Action
    ok: bool
    result: str
    """``success``, ``dry-run`` or ``failure`` (the remediation metric's label)."""
    detail: str = ""


@dataclass
class _Seen:
    finding: Finding
    first_seen: float


@dataclass
class LoopStats:
    passes: int = 0
    acts: int = 0
    actions: list[tuple[str, str, str]] = field(default_factory=list)
    """(action kind, target, result) of every action carried out, in order."""


class Reconciler:
    """See the module docstring. Build it in ``main`` with everything it needs."""

    def __init__(self, *, settings: Settings, desired: DesiredState, kube: Kube, informer: Informer,
                 metrics: WardenMetrics, health: HealthState, ledger: Ledger, observations: ObservationStore,
                 clock: Callable[[], float] = time.time, dry_run: bool = False, leading: bool = False,
                 rng: random.Random | None = None, emit_events: bool = True) -> None:
        self.settings = settings
        self.policy = replace(settings.remediation, dry_run=settings.remediation.dry_run or dry_run)
        self.desired = desired
        self.kube = kube
        self.informer = informer
        self.metrics = metrics
        self.health = health
        self.ledger = ledger
        self.observations = observations
        self.clock = clock
        self.rng = rng or random.Random()
        self.emit_events = emit_events
        self.queue: WorkQueue[str] = WorkQueue()
        self.stats = LoopStats()
        self._leading = leading
        self._announce = leading
        self._stopping = False
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._unresolved: dict[str, dict[tuple[str, str], _Seen]] = {}
        """Findings gone while their object still has another finding, by subject: resolved
        (Event, heal time) only once the object has no finding at all."""
        self._decided: dict[tuple[str, str, str], str] = {}
        self._failures: dict[str, int] = {}
        self._inflight: set[tuple[str, str]] = set()
        self._done_count = 0
        self._done: dict[tuple[str, str], int] = {}
        """When each action last completed, as a count of completions: a chain evaluated before
        another finding did one of its actions sees it done since (and does not do it again)."""
        self._last_outcome: dict[tuple[str, str], tuple[bool, str]] = {}
        self._not_before: dict[str, float] = {}
        """Finding work keys that must not be acted on before a time (a 429's Retry-After, a
        back-off after a transient failure), by the reconciler's clock."""
        self._refused: dict[tuple[str, str], str] = {}
        self._refusals: dict[tuple[str, str], str] = {}
        """Actions the API refused for good (another manager's fields, 403, 422), by the target's
        resourceVersion then: not tried again until that object changes."""
        self._workers: list[asyncio.Task[None]] = []
        self._resync: asyncio.Task[None] | None = None
        self.kserve_config_ref = ObjectRef(api_version="v1", kind="ConfigMap",
                                           namespace=settings.kserve_config.namespace,
                                           name=settings.kserve_config.name)
        self.coredns_ref = ObjectRef(api_version="apps/v1", kind="Deployment",
                                     namespace=settings.coredns.namespace, name=settings.coredns.deployment)
        metrics.set_leader(leading)
        health.set_leader(leading)
        stale_after = settings.kube.cache_stale_seconds
        health.watch_caches(lambda: informer.stale(stale_after))

    # -- wiring ---------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self._leading and not self._stopping

    @property
    def in_flight(self) -> frozenset[tuple[str, str]]:
        """``(action kind, target)`` of the actions being carried out right now."""
        return frozenset(self._inflight)

    def not_before(self, key: str) -> float | None:
        """When ``key`` may be acted on again (a Retry-After or back-off pending), by ``clock``."""
        return self._not_before.get(key)

    def set_leading(self, leading: bool) -> None:
        if leading and not self._leading:
            self._announce = True  # a new leader reports the findings it inherited as Events
        self._leading = leading
        self.metrics.set_leader(leading)
        self.health.set_leader(leading)
        if leading:
            self.queue.add(PASS)  # a new leader looks at everything at once

    def on_change(self, ref: ObjectRef, event: str) -> None:
        """Informer subscriber: any change → one (deduped) observe pass."""
        self.queue.add(PASS)

    def on_observation(self, obs: Observation) -> None:
        """Probe callback: record metrics, then look again if the observation can change a decision.

        A healthy run that repeats the previous healthy outcome of the same probe and target
        changes nothing a pass would decide; with 1,000 models probed every period, a pass per
        such run kept the reconciler busy back to back and starved the probes. A bad run always
        triggers a pass (the DNS hysteresis counts consecutive bad runs), and so does any change.
        """
        self.metrics.record_probe(obs)
        key = (obs.probe, obs.target)
        before = self._last_outcome.get(key)
        self._last_outcome[key] = (obs.ok, obs.outcome)
        if obs.ok and before == (obs.ok, obs.outcome):
            return
        self.queue.add(PASS)

    def restore_ledger(self) -> int:
        """Seed the ledger with past CoreDNS restarts kept in the Deployment's annotations."""
        dep = self.informer.get("Deployment", self.coredns_ref.namespace, self.coredns_ref.name)
        if dep is None:
            return 0
        ann = (dep.get("metadata") or {}).get("annotations") or {}
        stamps = {s.strip() for s in str(ann.get(RESTARTS_ANNOTATION, "")).split(",") if s.strip()}
        if ann.get(LAST_RESTART_ANNOTATION):
            stamps.add(str(ann[LAST_RESTART_ANNOTATION]))
        n = 0
        for s in sorted(stamps):
            at = parse_time(s)
            if at is not None:
                self.ledger.seed(ActionKind.RESTART_COREDNS, self.coredns_ref, at=at)
                n += 1
        if n:
            log.info("restored CoreDNS restart history", restarts=n, deployment=str(self.coredns_ref))
        return n

    # -- the pure part --------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> Evaluation:
        now = self.clock() if now is None else now
        world = self.informer.world()
        manifests = self.desired.manifests_for(world, kserve_config=self.kserve_config_ref)
        lookup = {(str(o.get("kind", "")), (o.get("metadata") or {}).get("namespace"),
                   str((o.get("metadata") or {}).get("name", ""))): o for o in world}
        drifts = diff_all(manifests, lookup)
        findings = diagnose(world=world, desired=manifests, drifts=drifts,
                            observations=self.observations.all(), settings=self.settings, now=now)
        index = index_by_ref(manifests)
        findings = with_escalations(findings, ledger=self.ledger, now=now, desired=index)
        decisions = plan(findings=findings, ledger=self.ledger, policy=self.policy, desired=index, now=now)
        decisions = [self._refusal(d, world) for d in decisions]
        return Evaluation(now=now, world=world, manifests=manifests, drifts=drifts, findings=findings,
                          decisions=decisions)

    # -- reconcile ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result:
        """One level-based reconcile of ``key`` (``PASS`` or a finding key)."""
        t0 = time.perf_counter()
        try:
            if key == PASS:
                return await self._pass()
            return await self._act_on(key)
        finally:
            if key == PASS:
                self.metrics.observe_reconcile(time.perf_counter() - t0)

    async def _pass(self) -> Result:
        ev = self.evaluate()
        self.stats.passes += 1
        self.metrics.set_unobserved(ev.world.unobserved)
        # Logs (and Events) first, gauges after: whoever sees a finding in /metrics finds its
        # explanation already in the log.
        await self._publish_findings(ev)
        self._publish_decisions(ev)
        self.metrics.set_findings(ev.findings)
        self.metrics.set_drift(ev.drifted)
        if self.leading:
            for f in ev.findings:
                wk = finding_work_key(f)
                if any(d.allowed and d.action is not None for d in ev.decisions_for(wk)):
                    wait = self._not_before.get(wk, 0.0) - ev.now
                    if wait > 0:
                        self.queue.add_after(wk, wait)  # never sooner than the server asked
                    else:
                        self.queue.add(wk)
        self.health.beat(self.clock())
        self.metrics.mark_success(loop="reconcile", now=self.clock())
        retry_at = min((d.retry_at for d in ev.decisions if d.retry_at is not None and d.retry_at > ev.now),
                       default=None)
        return Result(requeue_after=retry_delay(error=None, failures=0, retry_at=retry_at, now=ev.now))

    async def _publish_findings(self, ev: Evaluation) -> None:
        now = ev.now
        current = {f.key: f for f in ev.findings}
        subjects: dict[str, list[str]] = {}
        for f in ev.findings:
            subjects.setdefault(str(f.subject), []).append(f.code.value)
        announce, self._announce = self._announce and self.leading, False
        for k, f in current.items():
            seen = self._seen.get(k)
            if seen is None or seen.finding.severity != f.severity or seen.finding.evidence != f.evidence:
                log.warning("finding", code=f.code.value, severity=f.severity.value, subject=str(f.subject),
                            evidence=list(f.evidence), explanation=f.explanation, remedy=f.remedy,
                            caused=list(f.caused), new=seen is None)
            if announce or seen is None or seen.finding.severity != f.severity:
                await self._event(f.subject, type="Warning", reason=f.code.value,
                                  message=f"{f.explanation} Remedy: {f.remedy}")
            self._seen[k] = _Seen(finding=f, first_seen=seen.first_seen if seen else now)
        for k in [k for k in self._seen if k not in current]:
            gone = self._seen.pop(k)
            took = now - gone.first_seen
            now_named = subjects.get(str(gone.finding.subject))
            if now_named:
                # The same object is still wrong, under another name: this code is no longer
                # reported, but nothing is resolved yet. "Resolved" (Event, heal time) waits
                # until the object has no finding at all.
                log.info("finding cleared", code=gone.finding.code.value, subject=str(gone.finding.subject),
                         after_seconds=round(took, 3), superseded_by=now_named)
                self._unresolved.setdefault(str(gone.finding.subject), {})[k] = gone
                continue
            await self._resolved(gone, now)
        for subject in [s for s in self._unresolved if s not in subjects]:
            for gone in self._unresolved.pop(subject).values():
                await self._resolved(gone, now, logged=True)
        for waiting in self._unresolved.values():
            for k in [k for k in waiting if k in current]:
                del waiting[k]  # back under its own name: the new occurrence takes over
        index = index_by_ref(ev.manifests)
        for key in [k for k, t in self._not_before.items() if t <= now]:
            del self._not_before[key]  # served its time: nothing to remember
        for p in self.ledger.settle({k: fingerprint(f, index) for k, f in current.items()}):
            log.info("heal verified", finding=list(p.finding), actions=list(p.actions),
                     after_seconds=round(now - p.acted_at, 3))

    async def _resolved(self, gone: _Seen, now: float, *, logged: bool = False) -> None:
        """The finding's object has no finding left: its heal time and a "resolved" Event
        (``logged``: its "finding cleared" line went out when it was superseded)."""
        took = now - gone.first_seen
        self.metrics.observe_heal(code=gone.finding.code.value, seconds=took)
        if not logged:
            log.info("finding cleared", code=gone.finding.code.value, subject=str(gone.finding.subject),
                     after_seconds=round(took, 3))
        await self._event(gone.finding.subject, type="Normal", reason=gone.finding.code.value,
                          message=f"resolved after {took:.1f} s")

    def _publish_decisions(self, ev: Evaluation) -> None:
        live: set[tuple[str, str, str]] = set()
        for d in ev.decisions:
            fk = d.finding_key or ("", "")
            k = (fk[0], fk[1], d.action.key[0] + " " + d.action.key[1] if d.action else "")
            live.add(k)
            if self._decided.get(k) == d.verdict.value:
                continue
            self._decided[k] = d.verdict.value
            log.info("decision", finding=d.finding_code, subject=fk[1], verdict=d.verdict.value, why=d.why,
                     action=d.action.kind.value if d.action else None,
                     target=str(d.action.target) if d.action else None)
            if d.action is not None and d.verdict.value in HELD_VERDICTS:
                self.metrics.remediation_held(action=d.action.kind.value, verdict=d.verdict.value)
        for k in [k for k in self._decided if k not in live]:
            del self._decided[k]

    async def _act_on(self, key: str) -> Result:
        if not self.leading:
            return Result()
        wait = self._not_before.get(key, 0.0) - self.clock()
        if wait > 0:
            return Result(requeue_after=wait)  # a Retry-After or back-off not over yet
        self._not_before.pop(key, None)
        done_before = self._done_count
        ev = self.evaluate()
        decisions = [d for d in ev.decisions_for(key) if d.action is not None]
        acted = False
        for d in decisions:
            action = d.action
            assert action is not None
            if not d.allowed:
                break  # the chain stops at the first held-back action (plan says why)
            if action.key in self._inflight:
                break  # another finding is doing exactly this right now
            if self._done.get(action.key, -1) > done_before:
                # Another finding did exactly this since ``ev`` was taken (a pass in between, while
                # an earlier step of this chain waited on the API, handed it to its own finding):
                # the chain goes on without doing it twice.
                continue
            if self._still_refused(action, ev.world):
                break  # refused before, and the object has not changed since: asking again is a storm
            if self._stopping:
                break
            self._inflight.add(action.key)
            try:
                out = await self._carry_out(d, ev)
            except KubeError as err:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                if err.transient:
                    delay = retry_delay(error=err, failures=failures, rng=self.rng) or 0.0
                    self._not_before[key] = self.clock() + delay
                    log.warning("action failed, will retry", action=action.kind.value,
                                target=str(action.target), error=str(err), failures=failures,
                                retry_in_seconds=round(delay, 3))
                    return Result(requeue_after=delay, error=err)
                # A definitive refusal (a conflict with another manager, 403, 422): recorded,
                # so cooldown/budget hold it back; a person reads why.
                self._record(d, ev.now, ok=False)
                self._refused[action.key] = _rv(ev.world, action.target)
                self._refusals[action.key] = str(err)
                self.metrics.remediation(action=action.kind.value, result="failure")
                detail = str(err)
                if isinstance(err, ConflictError) and err.managers:
                    detail = (f"{', '.join(err.fields) or 'fields'} now owned by {', '.join(err.managers)}; "
                              "kserve-warden does not force over another field manager. To hand them back: "
                              "kubectl apply --server-side --force-conflicts --field-manager=kserve-warden "
                              f"-f <the desired manifest of {action.target}>")
                log.error("action refused", action=action.kind.value, target=str(action.target),
                          finding=d.finding_code, error=detail)
                await self._event(action.target, type="Warning", reason=d.finding_code,
                                  message=f"kserve-warden could not {action.kind.value}: {detail}")
                self.stats.actions.append((action.kind.value, str(action.target), "failure"))
                return Result(error=err)
            finally:
                self._inflight.discard(action.key)
            self._done_count += 1
            self._done[action.key] = self._done_count
            self._failures.pop(key, None)
            self._record(d, ev.now, ok=True)
            acted = True
            self.stats.acts += 1
            self.stats.actions.append((action.kind.value, str(action.target), out.result))
            self.metrics.remediation(action=action.kind.value, result=out.result)
            log.info("acted", action=action.kind.value, target=str(action.target), finding=d.finding_code,
                     verdict=d.verdict.value, why=d.why, result=out.result, detail=out.detail)
            await self._event(action.target, type="Normal", reason=d.finding_code,
                              message=f"kserve-warden {'would ' if out.result == 'dry-run' else ''}"
                                      f"{action.kind.value} ({d.why})")
        if acted:
            self.queue.add(PASS)
        return Result()

    def _refusal(self, d: Decision, world: World) -> Decision:
        """An allowed decision whose action the API refused (and whose object has not changed
        since) is published as ``refused``, with the refusal, not as something that will happen."""
        if d.allowed and d.action is not None and self._still_refused(d.action, world):
            return replace(d, verdict=Verdict.REFUSED,
                           why=f"refused by the API: {self._refusals.get(d.action.key, 'see the log')}; "
                               "not tried again until the object changes")
        return d

    def _still_refused(self, action: Action, world: World) -> bool:
        rv = self._refused.get(action.key)
        if rv is None:
            return False
        if rv == _rv(world, action.target):
            return True
        del self._refused[action.key]  # the object changed: worth one more try
        self._refusals.pop(action.key, None)
        return False

    def _record(self, d: Decision, now: float, *, ok: bool) -> None:
        assert d.action is not None
        self.ledger.record(d.action, now=now, finding=d.finding_key,
                           verify_after_seconds=self.policy.verify_after_seconds, ok=ok,
                           fingerprint=d.fingerprint)

    async def _carry_out(self, d: Decision, ev: Evaluation) -> Outcome:
        action = d.action
        assert action is not None
        dry = d.verdict is Verdict.DRY_RUN or self.policy.dry_run
        result = "dry-run" if dry else "success"
        t = action.target
        if action.kind is ActionKind.APPLY:
            manifest = copy_manifest(action.payload.get("manifest") or {})
            try:
                out = await self.kube.apply(manifest, dry_run=dry)
            except ConflictError as err:
                if not (self.policy.take_back_fields and err.is_apply_conflict):
                    raise
                # Opted in (GitOps-style): take back the fields the desired state declares.
                log.warning("taking fields back from another manager", target=str(t),
                            managers=list(err.managers), fields=list(err.fields))
                out = await self.kube.apply(manifest, dry_run=dry, force=True)
            return Outcome(action=action, ok=True, result=result,
                           detail=f"resourceVersion {(out.get('metadata') or {}).get('resourceVersion')}")
        if action.kind is ActionKind.DERIVE_SECRET:
            decl = self.desired.derived_secret(t)
            if decl is None:
                raise KubeError(f"{t} is not a derived secret in the desired state")
            try:
                await self.kube.derive_secret(decl, dry_run=dry)
            except ConflictError as err:
                if not (self.policy.take_back_fields and err.is_apply_conflict):
                    raise
                # A hand-edited derived secret: take its declared keys back, as for apply.
                log.warning("taking fields back from another manager", target=str(t),
                            managers=list(err.managers), fields=list(err.fields))
                await self.kube.derive_secret(decl, dry_run=dry, force=True)
            return Outcome(action=action, ok=True, result=result,
                           detail=f"from {decl.source_namespace}/{decl.source_name}")
        if action.kind is ActionKind.REMOVE_ANNOTATION:
            key = str(action.payload.get("key") or "")
            await self.kube.remove_annotation(t, key, dry_run=dry)
            return Outcome(action=action, ok=True, result=result, detail=f"annotation {key}")
        if action.kind is ActionKind.DELETE_POD:
            pod = ev.world.get("Pod", t.namespace, t.name)
            uid = str(((pod or {}).get("metadata") or {}).get("uid") or "") or None
            gone = await self.kube.delete_pod(t.namespace or "", t.name, dry_run=dry, uid=uid)
            return Outcome(action=action, ok=True, result=result,
                           detail="deleted" if gone else "already gone")
        if action.kind is ActionKind.RESTART_COREDNS:
            at = rfc3339(ev.now)
            window = self.policy.budgets.get(ActionKind.RESTART_COREDNS)
            span = window.window_seconds if window is not None else 3600.0
            recent = [rfc3339(x) for x in self.ledger.in_window(ActionKind.RESTART_COREDNS, now=ev.now,
                                                                 window_seconds=span)]
            annotations = {LAST_RESTART_ANNOTATION: at, RESTARTS_ANNOTATION: ",".join([*recent, at][-20:])}
            await self.kube.restart_deployment(t.namespace or "", t.name, at=at, dry_run=dry,
                                               annotations=annotations)
            return Outcome(action=action, ok=True, result=result, detail=f"restartedAt {at}")
        raise KubeError(f"unknown action kind {action.kind}")

    async def _event(self, ref: ObjectRef, *, type: str, reason: str, message: str) -> None:
        """An Event on ``ref`` (leader only: one replica reports, the others would duplicate)."""
        if not self.emit_events or not self.leading or ref.kind in ("", "Cluster"):
            return
        obj = self.informer.get(ref.kind, ref.namespace, ref.name)
        uid = str(((obj or {}).get("metadata") or {}).get("uid") or "") or None
        try:
            await self.kube.emit_event(ref, type=type, reason=reason, message=message, uid=uid)
        except KubeError as err:
            # Events are best effort: a lost Event must not stop a heal.
            log.warning("event not recorded", reason=reason, subject=str(ref), error=str(err))

    # -- running --------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                res = await self.reconcile(key)
            except asyncio.CancelledError:
                self.queue.done(key)
                raise
            except Exception as exc:  # a bug in one pass must not kill the worker
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                log.exception("reconcile crashed", key=key, failures=failures)
                res = Result(requeue_after=retry_delay(error=exc, failures=failures, rng=self.rng), error=exc)
            self.queue.done(key)
            if res.requeue_after is not None and not self._stopping:
                self.queue.add_after(key, res.requeue_after)

    async def _resync_timer(self) -> None:
        period = self.settings.kube.resync_period_seconds
        while True:
            await asyncio.sleep(period)
            self.queue.add(PASS)

    def start(self, *, workers: int = 4) -> None:
        """Start the workers and the resync timer (tasks owned by this object)."""
        self.queue.add(PASS)
        self._workers = [asyncio.create_task(self._worker(), name=f"reconcile-worker-{i}")
                         for i in range(workers)]
        self._resync = asyncio.create_task(self._resync_timer(), name="resync")

    async def heartbeat(self, period: float = 5.0) -> None:
        """Beat ``/healthz`` while the event loop turns (a wedged loop stops beating)."""
        while True:
            self.health.beat(self.clock())
            await asyncio.sleep(period)

    async def shutdown(self, *, deadline: float = 10.0) -> bool:
        """Stop acting, let in-flight work finish within ``deadline`` s; True if it did."""
        self._stopping = True
        self.queue.shut_down()
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
            self._resync = None
        clean = True
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=deadline)
            clean = not pending
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
        log.info("reconciler stopped", clean=clean)
        return clean

    async def idle(self, *, timeout: float = 10.0) -> None:
        """Wait until nothing is queued or being processed (tests, ``--once``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.queue.active:
            if loop.time() > end:
                raise TimeoutError("reconciler did not go idle")
            await asyncio.sleep(0.005)


def _rv(world: World, ref: ObjectRef) -> str:
    obj = world.get(ref.kind, ref.namespace, ref.name)
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def summarize(findings: Sequence[Finding]) -> Mapping[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        out[f.code.value] = out.get(f.code.value, 0) + 1
    return out
