"""``drift`` (and a missing DerivedSecret source): the drift no specific rule claimed.

Runs last. Each unclaimed drifted object becomes one warning whose action is to put it back:
server-side apply from the desired state, or, for a DerivedSecret, re-derive it from its
source. A DerivedSecret whose source Secret does not exist cannot be derived, so that is
``storage-credentials-missing`` for a person instead of a drift the daemon would retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.core.desired import DERIVED_FROM_ANNOTATION
from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import annotations_of
from daemon.core.diagnosis.unobserved import unreadable
from daemon.core.findings import Code, Severity
from daemon.core.objects import ObjectRef


def _derived_from(desired: Mapping[str, Any] | None) -> str | None:
    """The ``namespace/name`` source of a DerivedSecret (None for a plain desired object)."""
    src = annotations_of(desired).get(DERIVED_FROM_ANNOTATION)
    return str(src) if src is not None else None


def _finding(ctx: Pass, *, ref: ObjectRef, evidence: list[str], src: str | None) -> Draft:
    """Put ``ref`` back: apply it, or re-derive it when it is a DerivedSecret with a source."""
    if src is None:
        return Draft(
            code=Code.DRIFT,
            severity=Severity.WARNING,
            subject=ref,
            evidence=evidence,
            data={"apply": [ref]},
            remedy=(
                f"server-side apply {ref} from the desired state: kubectl apply --server-side "
                "--field-manager=kserve-warden -f config/desired/ (done automatically)"
            ),
        )
    src_ns, _, src_name = src.partition("/")
    if ctx.world.get("Secret", src_ns, src_name) is None:
        # Nothing to derive from: retrying would not help, a person must restore the source.
        return Draft(
            code=Code.STORAGE_CREDENTIALS_MISSING,
            severity=Severity.CRITICAL,
            subject=ref,
            evidence=[*evidence, f"source Secret {src} does not exist"],
            data={"human": True},
            remedy=(
                f"create the source secret {src} (kubectl get secret {src_name} -n {src_ns}) "
                "or fix the DerivedSecret declaration in config/desired/"
            ),
        )
    return Draft(
        code=Code.DRIFT,
        severity=Severity.WARNING,
        subject=ref,
        evidence=evidence,
        data={"derive": [ref]},
        remedy=f"re-derive Secret {ref.namespace}/{ref.name} from {src} (done automatically)",
    )


def unclaimed_drift(ctx: Pass) -> None:
    for key, drift in sorted(ctx.drifts.items(), key=lambda kv: str(kv[0])):
        if key in ctx.claimed:
            continue
        if unreadable(ctx, key[0]):
            continue  # the live object cannot be read, so neither can its drift (said not checked)
        d = ctx.desired.get(key)
        ref = ObjectRef.of(dict(d)) if d is not None else drift.ref
        src = _derived_from(d) if key[0] == "Secret" else None
        ctx.add(_finding(ctx, ref=ref, evidence=drift.describe(), src=src))
