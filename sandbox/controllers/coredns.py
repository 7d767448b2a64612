"""CoreDNS's Deployment, simulated: a rollout restart heals the degraded DNS server.

The seed fixed its istiod lookups with ``kubectl rollout restart deployment coredns -n
kube-system``, which patches ``spec.template.metadata.annotations
["kubectl.kubernetes.io/restartedAt"]``. This controller watches that Deployment; when the
annotation takes a value it has not rolled out yet, it waits a short simulated rollout
(:data:`ROLLOUT_SECONDS`), clears ``DnsServer.degraded`` (fresh pods, fresh caches) and
reports the rollout in the Deployment's status (``observedGeneration``, ``replicas``,
``readyReplicas``, ``updatedReplicas``, ``availableReplicas``), the way ``kubectl rollout
status`` reads it. Any other Deployment change is only acknowledged in status.

On the real control plane, kube-controller-manager's deployment controller owns that status:
it sets ``observedGeneration`` as soon as it *sees* the new template, before this controller
has finished its simulated rollout (and its CoreDNS pods never run, so it never reports them
available). The Deployment's status therefore says nothing about whether the DNS server was
healed yet; :meth:`CoreDnsController.rolled_out` does, on both control planes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from kubernetes_asyncio.client import ApiClient, AppsV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.controllers.watch import MERGE_KW, Informer, Obj

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ROLLOUT_SECONDS = 0.3


class Degradable(Protocol):
    degraded: bool


def restarted_at(deployment: Obj) -> str | None:
    tmpl = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (tmpl.get("annotations") or {}).get(RESTARTED_AT)
    return None if value is None else str(value)


def rollout_status(deployment: Obj) -> Obj:
    """The status of a finished rollout of ``deployment``. Pure."""
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    return {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": replicas,
        "readyReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


class CoreDnsController:
    def __init__(
        self, api: ApiClient, *, dns: Degradable, namespace: str = "kube-system", name: str = "coredns"
    ) -> None:
        self._apps = AppsV1Api(api)
        self._dns = dns
        self._name = name
        self._namespace = namespace
        self._rolled: str | None = None
        self._seen_first = False
        self._pending: asyncio.Task[None] | None = None
        self._heal = False
        self._latest: Obj | None = None
        self.informer = Informer(
            self._apps.list_namespaced_deployment,
            namespace,
            on_change=self._on_change,
            name="coredns",
            field_selector=f"metadata.name={name}",
        )
        self.rollouts = 0

    def _on_change(self, type_: str, dep: Obj) -> None:
        if type_ == "DELETED":
            return
        stamp = restarted_at(dep)
        if not self._seen_first:
            # The value present at start-up is the current state, not a restart request.
            self._seen_first, self._rolled = True, stamp
        if stamp is not None and stamp != self._rolled:
            self._rolled, self._heal = stamp, True
        self._latest = dep
        status = dep.get("status") or {}
        behind = status.get("observedGeneration") != dep["metadata"].get("generation")
        if (self._heal or behind) and (self._pending is None or self._pending.done()):
            self._pending = asyncio.create_task(self._rollout(), name="coredns-rollout")

    def rolled_out(self, stamp: str | None) -> bool:
        """Whether the restart stamped ``stamp`` (a ``restartedAt`` read through the API) is
        finished here: seen, and its heal of the DNS server applied. False while this
        controller has not seen the stamp yet, so a caller that polls it never passes a
        heal still in flight."""
        return self._seen_first and stamp == self._rolled and not self._heal

    async def _rollout(self) -> None:
        """Finish pending rollouts; reads the newest Deployment seen when writing its status."""
        while True:
            if self._heal:
                await asyncio.sleep(ROLLOUT_SECONDS)
                self._heal = False
                self._dns.degraded = False
                self.rollouts += 1
            dep = self._latest
            if dep is None:
                return
            try:
                await self._apps.patch_namespaced_deployment_status(
                    self._name, self._namespace, {"status": rollout_status(dep)}, **MERGE_KW
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    await asyncio.sleep(0.2)  # a fault hook or a restart: write it again
                    continue
            if not self._heal:
                return

    async def run(self) -> None:
        try:
            await self.informer.run()
        finally:
            if self._pending is not None:
                self._pending.cancel()
                await asyncio.gather(self._pending, return_exceptions=True)
