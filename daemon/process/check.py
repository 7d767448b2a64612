"""``kserve-warden check``: one pass — list, probe once, diagnose — and print what is wrong.

The same pipeline as the daemon (``Reconciler.evaluate``), without watches, leadership or
writes: it lists each kind once, runs every probe once, diagnoses, plans (so it can say
what the daemon *would* do), and prints

* ``--output text``: a table of findings (severity, code, subject) and, under it, one block
  per finding with its evidence, the explanation and the remedy — wrapped to the terminal;
* ``--output json``: one document with ``healthy``, ``findings`` (``Finding.to_dict``),
  ``decisions`` and the probe ``observations``.

Exit codes: 0 healthy, 1 findings, 2 bad input (invalid settings or desired state, no usable
kubeconfig, an API that cannot be reached). Everything printed goes through the redactor:
the storage probe reads the model's real credentials, and none may appear in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

from daemon.core import logs
from daemon.core.errors import KubeError
from daemon.core.findings import SEVERITY_RANK, Finding
from daemon.process.exitcodes import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK
from daemon.process.loop import Evaluation
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
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.code.value, str(f.subject)))


def render_text(ev: Evaluation, observations: Sequence[Observation], *, width: int = 100) -> str:
    """Findings as a terminal table plus a detail block each."""
    width = max(60, width)
    findings = _order(ev.findings)
    lines: list[str] = []
    ok = [o for o in observations if o.ok]
    lines.append(f"kserve-warden check: {len(findings)} finding(s); "
                 f"{len(ok)}/{len(observations)} probe(s) ok; {ev.drifted} drifted object(s)")
    if not findings:
        lines.append("healthy: nothing to report")
        return "\n".join(lines) + "\n"
    rows = [("#", "SEVERITY", "CODE", "SUBJECT")] + [
        (str(i), f.severity.value.upper(), f.code.value, str(f.subject)) for i, f in enumerate(findings, 1)]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines.append("")
    for n, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    wrap = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    ev_wrap = textwrap.TextWrapper(width=width, initial_indent="    - ", subsequent_indent="      ")
    for i, f in enumerate(findings, 1):
        lines.append("")
        lines.append(f"[{i}] {f.code.value} ({f.severity.value}) on {f.subject}")
        if f.evidence:
            lines.append("  evidence:")
            for e in f.evidence:
                lines.extend(ev_wrap.wrap(e) or ["    -"])
        if f.caused:
            lines.append("  also explains:")
            for c in f.caused:
                lines.extend(ev_wrap.wrap(c))
        lines.append("  why:")
        lines.extend(wrap.wrap(f.explanation))
        lines.append("  fix:")
        for para in f.remedy.splitlines() or [""]:
            lines.extend(wrap.wrap(para) or [""])
        acts = [d for d in ev.decisions if d.finding_key == f.key and d.action is not None]
        for d in acts:
            assert d.action is not None
            lines.append(f"  the daemon would: {d.action.kind.value} {d.action.target} [{d.verdict.value}]")
    return "\n".join(lines) + "\n"


def render_json(ev: Evaluation, observations: Sequence[Observation]) -> str:
    doc: dict[str, Any] = {
        "healthy": not ev.findings,
        "findings": [f.to_dict() for f in _order(ev.findings)],
        "decisions": [d.to_dict() for d in ev.decisions],
        "drift": [d.to_dict() for d in ev.drifts if d.drifted],
        "observations": [o.to_dict() for o in observations],
    }
    return json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"


async def _check(args: argparse.Namespace, inputs: Inputs, redactor: logs.Redactor) -> tuple[int, str]:
    api = await api_client_for(getattr(args, "kubeconfig", None))
    try:
        # dry_run: ``check`` never writes, whatever a bug might try.
        d = build_daemon(inputs=inputs, api=api, redactor=redactor, dry_run=True, name="kserve-warden-check")
        try:
            await d.informer.sync_once()
        except KubeError as err:
            raise BadInput([f"cannot read the cluster: {err}"]) from err
        observations = await d.probes.run_once()
        ev = d.reconciler.evaluate(time.time())
    finally:
        await api.close()
    if args.output == "json":
        text = render_json(ev, observations)
    else:
        text = render_text(ev, observations, width=shutil.get_terminal_size((100, 24)).columns)
    return (EXIT_FINDINGS if ev.findings else EXIT_OK), redactor.scrub(text)


def check_command(args: argparse.Namespace) -> int:
    redactor = logs.Redactor()
    try:
        inputs = load_inputs(args, environ=os.environ)
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
