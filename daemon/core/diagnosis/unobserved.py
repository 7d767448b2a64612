"""Kinds the daemon could not read: said once, as INFO ``not-checked``, never guessed around.

A kind RBAC does not grant (:data:`~daemon.core.world.FORBIDDEN`) leaves an empty cache that is
not the truth: a rule that reads "no ServingRuntime lists sklearn" from it would raise a false
critical. So each such kind is one cluster-wide ``not-checked`` finding naming the kind and the
grant that would let it be read, and the rules whose verdict rests on the absence of that kind
ask :func:`unreadable` first. A kind the cluster does not serve
(:data:`~daemon.core.world.NOT_SERVED`: no Istio, so no PeerAuthentication CRD) is no finding: none
of it can exist, and the empty cache is the truth.
"""

from __future__ import annotations

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import ref
from daemon.core.findings import Code, Severity
from daemon.core.resources import resource_for
from daemon.core.world import FORBIDDEN


def unreadable(ctx: Pass, *kinds: str) -> dict[str, str]:
    """Those of ``kinds`` RBAC keeps the daemon from reading, with why."""
    return {k: why for k in kinds if (why := ctx.world.unobserved.get(k, "")).startswith(FORBIDDEN)}


def unobserved_kinds(ctx: Pass) -> None:
    """One INFO ``not-checked`` per kind the daemon may not read."""
    for kind, why in sorted(unreadable(ctx, *ctx.world.unobserved).items()):
        res = resource_for("", kind)  # the informer's kinds are all in the table
        ctx.add(Draft(
            code=Code.NOT_CHECKED, severity=Severity.INFO,
            subject=ref(res.api_version, kind, None, res.plural),
            evidence=[f"not checked: every finding that depends on {kind} objects ({why})"],
            remedy=(f"grant the daemon get/list/watch on {res.plural}"
                    f"{'.' + res.group if res.group else ''} (kserve-warden's ClusterRole, or a Role "
                    f"in each namespace it watches) if it should judge them"),
        ))
