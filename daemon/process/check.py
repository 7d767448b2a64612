"""``kserve-warden check``: one pass — list, probe once, diagnose — and print what is wrong.

The same pipeline as the daemon (``Reconciler.evaluate``), without watches, leadership or
writes: it lists each kind once, runs every probe once, diagnoses, plans (so it can say
what the daemon *would* do), and prints

* ``--output text``: cluster-wide findings first (DNS, drift of an object no model owns), then
  one section per InferenceService in scope: a single line for a healthy one
  (``ns/name  ready  ok``), a table of findings and a detail block each (evidence, why, fix,
  what the daemon would do) for the others — readable with hundreds of models. Prose is
  wrapped to the terminal; commands and names never are (:mod:`daemon.process.prose`);
* ``--output json``: one document whose ``inferenceservices`` lists every InferenceService in
  scope (``namespace``, ``name``, ``ready`` from its live ``Ready`` condition — ``null`` when it
  does not exist yet or has none — and its ``findings``), ``cluster_findings`` the rest, and,
  for compatibility, ``healthy``, every ``findings``, ``decisions``, ``drift`` and the probe
  ``observations``; ``failure_threshold``, ``output_threshold`` and ``hidden_findings`` (how
  many the output threshold left out).

Findings are listed most severe first, and within a severity in the order the diagnosis named
them: its rules run most specific first, so a model's root cause comes before what it explains
(a disabled sidecar before the policy it makes unenforceable).

Thresholds (:mod:`daemon.core.thresholds`, as ``istioctl analyze``): ``--failure-threshold``
(default ``warning``: INFO "not checked" notes alone exit 0) and ``--output-threshold`` (the
lowest severity printed, default ``info``), for both outputs.

Scope: the settings' ``scope`` unless ``--namespace/-n`` (repeatable), ``--selector/-l`` or
``--all-namespaces/-A`` (the default) say otherwise, as kubectl spells them. The scope narrows
the desired state too (:mod:`daemon.core.scope`, kubectl's rule: a selector applies to each
object's own labels): a desired object outside it is neither diffed nor diagnosed.

Exit codes: 0 nothing at or above the failure threshold, 1 something is, 2 bad input (invalid
settings or desired state, no usable kubeconfig, an API that cannot be reached). Everything
printed goes through the redactor: the storage probe reads the model's real credentials, and
none may appear in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from daemon.core import logs
from daemon.core.discovery import discover
from daemon.core.errors import KubeError
from daemon.core.findings import SEVERITY_RANK, Finding, Severity
from daemon.core.label_selector import selector_problem
from daemon.core.scope import narrow_desired
from daemon.core.settings import ModelSettings, Settings
from daemon.core.thresholds import DEFAULT_FAILURE_THRESHOLD, DEFAULT_OUTPUT_THRESHOLD, at_or_above, fails
from daemon.process.exitcodes import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK
from daemon.process.loop import Evaluation
from daemon.process.metrics import isvc_of
from daemon.process.prose import wrap
from daemon.process.runner import (
    BadInput,
    Inputs,
    api_client_for,
    build_daemon,
    configure_logging,
    load_inputs,
    print_problems,
)
from probes.observation import Observation


def _order(findings: Sequence[Finding]) -> list[Finding]:
    """Most severe first; within a severity, the diagnosis's order (root causes first)."""
    return sorted(findings, key=lambda f: -SEVERITY_RANK[f.severity])


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """``--failure-threshold`` and ``--output-threshold``."""

    failure: Severity = DEFAULT_FAILURE_THRESHOLD
    output: Severity = DEFAULT_OUTPUT_THRESHOLD


@dataclass(frozen=True, kw_only=True)
class IsvcReport:
    """One InferenceService in scope, as ``check`` reports it."""

    namespace: str
    name: str
    ready: bool | None
    """The live ``Ready`` condition; ``None`` when the object does not exist yet or has none."""
    findings: tuple[Finding, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "ready": self.ready,
                "findings": [f.to_dict() for f in self.findings]}


def ready_of(isvc: Mapping[str, Any] | None) -> bool | None:
    """``True``/``False`` from the ``Ready`` condition's status; ``None`` without one."""
    for cond in ((isvc or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            status = str(cond.get("status"))
            return True if status == "True" else False if status == "False" else None
    return None


def by_inferenceservice(ev: Evaluation, models: Sequence[ModelSettings],
                        findings: Sequence[Finding] | None = None) -> tuple[list[IsvcReport], list[Finding]]:
    """Findings (default: all of ``ev``'s) grouped per InferenceService (every one of
    ``models``, with or without findings, plus any a finding names), and the cluster-wide rest."""
    grouped: dict[tuple[str, str], list[Finding]] = {(m.namespace, m.name): [] for m in models}
    cluster: list[Finding] = []
    for f in _order(ev.findings if findings is None else findings):
        key = isvc_of(f)
        if key is None:
            cluster.append(f)
        else:
            grouped.setdefault(key, []).append(f)
    reports = [IsvcReport(namespace=ns, name=name, ready=ready_of(ev.world.get("InferenceService", ns, name)),
                          findings=tuple(fs)) for (ns, name), fs in sorted(grouped.items())]
    return reports, cluster


def _ready_word(ready: bool | None) -> str:
    return "ready" if ready else "not-ready" if ready is False else "unknown"


def _finding_blocks(ev: Evaluation, findings: Sequence[Finding], *, width: int, start: int) -> list[str]:
    """The findings' table, then one detail block each (numbered from ``start``)."""
    lines: list[str] = []
    rows = [("#", "SEVERITY", "CODE", "SUBJECT")] + [
        (str(i), f.severity.value.upper(), f.code.value, str(f.subject))
        for i, f in enumerate(findings, start)]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for n, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    def item(text: str) -> list[str]:
        return wrap(text, width=width, indent="    - ", subsequent_indent="      ") or ["    -"]

    for i, f in enumerate(findings, start):
        lines.append("")
        lines.append(f"[{i}] {f.code.value} ({f.severity.value}) on {f.subject}")
        if f.evidence:
            lines.append("  evidence:")
            for e in f.evidence:
                lines.extend(item(e))
        if f.caused:
            lines.append("  also explains:")
            for c in f.caused:
                lines.extend(item(c))
        lines.append("  why:")
        lines.extend(wrap(f.explanation, width=width, indent="    "))
        lines.append("  fix:")
        for para in f.remedy.splitlines() or [""]:
            lines.extend(wrap(para, width=width, indent="    ") or [""])
        acts = [d for d in ev.decisions if d.finding_key == f.key and d.action is not None]
        for d in acts:
            assert d.action is not None
            lines.append(f"  the daemon would: {d.action.kind.value} {d.action.target} [{d.verdict.value}]")
    return lines


def _verdict(ev: Evaluation, thresholds: Thresholds) -> str:
    """The line that says why ``check`` exits as it does."""
    failing = at_or_above(ev.findings, thresholds.failure)
    if failing:
        return (f"failing: {len(failing)} finding(s) at or above {thresholds.failure.value} "
                "(--failure-threshold)")
    if not ev.findings:
        return "healthy: nothing to report"
    return f"healthy: no finding at or above {thresholds.failure.value} (--failure-threshold)"


def render_text(ev: Evaluation, observations: Sequence[Observation], *, width: int = 100,
                models: Sequence[ModelSettings] = (), thresholds: Thresholds = Thresholds()) -> str:
    """Cluster-wide findings first, then each InferenceService: one line when healthy, its
    findings' table and details otherwise; only findings at or above the output threshold."""
    width = max(60, width)
    shown = at_or_above(ev.findings, thresholds.output)
    hidden = len(ev.findings) - len(shown)
    reports, cluster = by_inferenceservice(ev, models, shown)
    ok = [o for o in observations if o.ok]
    below = f" ({hidden} below {thresholds.output.value} not shown)" if hidden else ""
    lines = [f"kserve-warden check: {len(shown)} finding(s){below}; "
             f"{len(ok)}/{len(observations)} probe(s) ok; {ev.drifted} drifted object(s)"]
    if reports:
        sick = sum(1 for r in reports if r.findings)
        lines.append(f"{len(reports)} InferenceService(s) in scope, {sick} with findings")
    lines.append(_verdict(ev, thresholds))
    n = 1
    if cluster:
        lines.append("")
        if reports:
            lines.append("== cluster-wide")
        lines.extend(_finding_blocks(ev, cluster, width=width, start=n))
        n += len(cluster)
    healthy = [r for r in reports if not r.findings]
    if healthy:
        lines.append("")
        name_w = max(len(r.key) for r in healthy)
        for r in healthy:
            lines.append(f"{r.key.ljust(name_w)}  {_ready_word(r.ready)}  ok".rstrip())
    for r in (r for r in reports if r.findings):
        lines.append("")
        lines.append(f"== {r.key}  {_ready_word(r.ready)}  {len(r.findings)} finding(s)")
        lines.extend(_finding_blocks(ev, r.findings, width=width, start=n))
        n += len(r.findings)
    return "\n".join(lines) + "\n"


def render_json(ev: Evaluation, observations: Sequence[Observation], *,
                models: Sequence[ModelSettings] = (), thresholds: Thresholds = Thresholds()) -> str:
    """The JSON document; ``healthy`` is "nothing at or above the failure threshold" (exit 0),
    and the findings and their decisions are those at or above the output threshold."""
    shown = at_or_above(ev.findings, thresholds.output)
    keys = {f.key for f in shown}
    reports, cluster = by_inferenceservice(ev, models, shown)
    doc: dict[str, Any] = {
        "healthy": not fails(ev.findings, thresholds.failure),
        "failure_threshold": thresholds.failure.value,
        "output_threshold": thresholds.output.value,
        "hidden_findings": len(ev.findings) - len(shown),
        "inferenceservices": [r.to_dict() for r in reports],
        "cluster_findings": [f.to_dict() for f in cluster],
        "findings": [f.to_dict() for f in _order(shown)],
        "decisions": [d.to_dict() for d in ev.decisions if d.finding_key in keys],
        "drift": [d.to_dict() for d in ev.drifts if d.drifted],
        "observations": [o.to_dict() for o in observations],
    }
    return json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"


def scoped(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with ``--namespace``/``--selector``/``--all-namespaces`` applied over
    ``scope``; :class:`BadInput` for a selector that is not one."""
    namespaces = list(getattr(args, "namespace", None) or [])
    selector = getattr(args, "selector", None)
    if getattr(args, "all_namespaces", False):
        if namespaces:
            raise BadInput(["--all-namespaces and --namespace exclude each other"])
        scope = replace(settings.scope, namespaces=())
    elif namespaces:
        scope = replace(settings.scope, namespaces=tuple(dict.fromkeys(namespaces)))
    else:
        scope = settings.scope
    if selector is not None:
        if (why := selector_problem(selector)) is not None:
            raise BadInput([f"--selector: not a label selector ({why}), got {selector!r}"])
        scope = replace(scope, selector=selector or None)
    return replace(settings, scope=scope)


async def _check(args: argparse.Namespace, inputs: Inputs, redactor: logs.Redactor) -> tuple[int, str]:
    api = await api_client_for(getattr(args, "kubeconfig", None))
    try:
        # dry_run: ``check`` never writes, whatever a bug might try.
        d = build_daemon(inputs=inputs, api=api, redactor=redactor, dry_run=True, name="kserve-warden-check")
        try:
            await d.informer.sync_once(retry_seconds=d.settings.kube.request_timeout_seconds)
        except KubeError as err:
            raise BadInput([f"cannot read the cluster: {err}"]) from err
        observations = await d.probes.run_once()
        ev = d.reconciler.evaluate(time.time())
    finally:
        await api.close()
    models = discover(world=ev.world, desired=ev.manifests, settings=inputs.settings).models
    thresholds = Thresholds(failure=Severity(getattr(args, "failure_threshold", DEFAULT_FAILURE_THRESHOLD)),
                            output=Severity(getattr(args, "output_threshold", DEFAULT_OUTPUT_THRESHOLD)))
    if args.output == "json":
        text = render_json(ev, observations, models=models, thresholds=thresholds)
    else:
        text = render_text(ev, observations, width=shutil.get_terminal_size((100, 24)).columns, models=models,
                           thresholds=thresholds)
    return (EXIT_FINDINGS if fails(ev.findings, thresholds.failure) else EXIT_OK), redactor.scrub(text)


def check_command(args: argparse.Namespace) -> int:
    redactor = logs.Redactor()
    try:
        inputs = load_inputs(args, environ=os.environ)
        settings = scoped(inputs.settings, args)
        # The scope narrows the desired state too: an object outside it is not diffed or diagnosed.
        inputs = Inputs(settings=settings, desired=narrow_desired(
            inputs.desired, namespaces=settings.scope.namespaces, selector=settings.scope.selector))
        configure_logging(args, inputs.settings, redactor)
        code, text = asyncio.run(_check(args, inputs, redactor))
    except BadInput as err:
        print_problems(err.problems, command="check")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(text)
    sys.stdout.flush()
    return code
