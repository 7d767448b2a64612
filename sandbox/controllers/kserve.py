"""The KServe controller (and its pod webhook, and the Deployment/ReplicaSet under it), simulated.

On the stand-in API server only: on the real control plane KServe's own manager runs instead
(:mod:`sandbox.realcp.kserve`), and where the two differ KServe is right.

The decisions are pure functions in their own modules (:mod:`.runtime_select`,
:mod:`.predictor_pod`, :mod:`.isvc_status`); this module watches and writes.

For each InferenceService it picks a ServingRuntime the way KServe does — the one named by
``spec.predictor.model.runtime`` (namespaced first, then cluster), else the first runtime not
disabled whose ``supportedModelFormats`` lists the model's format with ``autoSelect`` — and:

* none → ``Ready``/``PredictorReady`` False with reason ``NoSupportingRuntime``,
  ``status.modelStatus.lastFailureInfo``, and a Warning Event ``InternalError`` with the
  seed's message ``no runtime found to support predictor with model type: {sklearn <nil>}``;
* else the predictor Pod ``<isvc>-predictor-00001-deployment-<hash>-<suffix>``: the runtime's
  containers, the ServiceAccount's ``imagePullSecrets``, the storage-initializer with the
  credentials env the webhook would inject, and ``istio-proxy`` when injection applies
  (namespace label ``istio-injection=enabled`` and no ``sidecar.istio.io/inject: "false"``).
  The hash covers every input, so changing one (pull secrets, sidecar decision, storage
  secret) rolls a new pod out; old pods go only once the new one is Ready, as a Deployment's
  rolling update keeps serving. Deleted pods are recreated.

The ISVC's status follows the newest pod (``PredictorReady``, ``IngressReady``, ``Ready``,
``modelStatus``); ``status.url`` is the seed's external URL, ``status.address.url`` the
predictor's real loopback address, which the kubelet publishes in the pod annotation
:data:`URL_ANNOTATION` (in a cluster it would be the cluster-local service URL).

Where KServe v0.20's own controller (Standard mode, on the real control plane; see
``tests/integration/test_sandbox_failures.py``) answers otherwise, and this keeps the seed's
Serverless-era symptoms instead:

* it reconciles an InferenceService when it or what it owns changes, not when a ServingRuntime
  does; a *named* runtime gone is ``RuntimeNotRecognized`` "Waiting for runtime to become
  available" (Ready stays True while the old Deployment serves), with an ``InternalError`` Event
  ``No ServingRuntimes or ClusterServingRuntimes with the name: <rt>``; none auto-selected is
  ``NoSupportingRuntime`` "No runtime found to support specified framework/version";
* its pod webhook refuses a pod whose storage secret does not exist in the namespace (the
  ReplicaSet's ``FailedCreate``, the Deployment's ``ReplicaFailure``), where this one starts the
  storage-initializer without credentials (the seed's ``NoCredentialsError``);
* a ServiceAccount's ``imagePullSecrets`` reach only pods created after the change (here a
  change rolls a new pod out).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.controllers.events import EventRecorder
from sandbox.controllers.isvc_status import desired_status, ready, stamp
from sandbox.controllers.predictor_pod import (
    GROUP,
    INPUTS_ANNOTATION,
    LABEL_ISVC,
    URL_ANNOTATION,
    build_pod,
    sidecar_injected,
)
from sandbox.controllers.runtime_select import model_format, no_runtime_message, select_runtime
from sandbox.controllers.storage_initializer import CredentialsConfig, resolve_credentials
from sandbox.controllers.watch import MERGE_KW, Informer, Key, KeyQueue, Obj, merge_patch, run_all, work

EXPECTATION_SECONDS = 5.0


class KServeController:
    """Watches ISVCs and their inputs over the API; creates pods; writes ISVC status."""

    def __init__(self, api: ApiClient) -> None:
        self._core = CoreV1Api(api)
        self._co = CustomObjectsApi(api)
        self._events = EventRecorder(api, component="v1beta1Controllers")
        self.queue = KeyQueue()
        # (namespace, inputs hash) -> (pod name, when): pods created but not yet seen.
        self._created: dict[tuple[str, str], tuple[str, float]] = {}
        on = self._on_change
        self.isvcs = Informer(
            self._co.list_cluster_custom_object,
            GROUP,
            "v1beta1",
            "inferenceservices",
            on_change=self._on_isvc,
            name="inferenceservices",
        )
        self.runtimes = Informer(
            self._co.list_cluster_custom_object,
            GROUP,
            "v1alpha1",
            "servingruntimes",
            on_change=on,
            name="servingruntimes",
        )
        self.cluster_runtimes = Informer(
            self._co.list_cluster_custom_object,
            GROUP,
            "v1alpha1",
            "clusterservingruntimes",
            on_change=on,
            name="clusterservingruntimes",
        )
        self.sas = Informer(self._core.list_service_account_for_all_namespaces, on_change=on, name="sa")
        self.secrets = Informer(self._core.list_secret_for_all_namespaces, on_change=on, name="secrets")
        self.namespaces = Informer(self._core.list_namespace, on_change=on, name="namespaces")
        self.configmaps = Informer(
            self._core.list_namespaced_config_map,
            "kserve",
            on_change=on,
            name="configmaps",
            field_selector="metadata.name=inferenceservice-config",
        )
        self.pods = Informer(
            self._core.list_pod_for_all_namespaces,
            on_change=self._on_pod,
            name="pods",
            label_selector=LABEL_ISVC,
        )

    def _on_isvc(self, _type: str, obj: Obj) -> None:
        ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        self.queue.add((ns, name))

    def _on_pod(self, _type: str, obj: Obj) -> None:
        meta = obj["metadata"]
        digest = (meta.get("annotations") or {}).get(INPUTS_ANNOTATION, "")
        pending = self._created.get((meta.get("namespace", ""), digest))
        if pending is not None and pending[0] == meta.get("name"):
            del self._created[(meta.get("namespace", ""), digest)]
        self.queue.add((meta.get("namespace", ""), (meta.get("labels") or {}).get(LABEL_ISVC, "")))

    def _on_change(self, _type: str, obj: Obj) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        for key in self.isvcs.cache:
            if ns in (None, "", key[0]):
                self.queue.add(key)

    def _awaiting(self, ns: str, digest: str) -> bool:
        """A pod for these inputs was created and its ADDED event has not arrived yet (expectations)."""
        pending = self._created.get((ns, digest))
        if pending is None or time.monotonic() - pending[1] > EXPECTATION_SECONDS:
            self._created.pop((ns, digest), None)
            return False
        return True

    async def run(self) -> None:
        informers = [
            self.isvcs,
            self.runtimes,
            self.cluster_runtimes,
            self.sas,
            self.secrets,
            self.namespaces,
            self.configmaps,
            self.pods,
        ]
        await run_all(*(i.run() for i in informers), self._start_worker(informers))

    async def _start_worker(self, informers: list[Informer]) -> None:
        for i in informers:
            await i.synced.wait()
        await work(self.queue, self.reconcile, name="kserve")

    async def reconcile(self, key: Key) -> float | None:
        ns, name = key
        isvc = self.isvcs.cache.get(key)
        pods = [
            p
            for (pns, _), p in self.pods.cache.items()
            if pns == ns and (p["metadata"].get("labels") or {}).get(LABEL_ISVC) == name
        ]
        if isvc is None or isvc["metadata"].get("deletionTimestamp"):
            for p in pods:
                await self._delete_pod(p)
            return None
        runtime = select_runtime(
            isvc, list(self.runtimes.cache.values()), list(self.cluster_runtimes.cache.values())
        )
        newest: Obj | None = None
        if runtime is None:
            fmt = model_format(isvc)
            await self._events.record(
                isvc, type_="Warning", reason="InternalError", message=no_runtime_message(*fmt)
            )
        else:
            template = self._template(isvc, runtime)
            digest = template["metadata"]["annotations"][INPUTS_ANNOTATION]
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            current = [
                p for p in live if (p["metadata"].get("annotations") or {}).get(INPUTS_ANNOTATION) == digest
            ]
            if not current:
                if self._awaiting(ns, digest):
                    return 0.5  # created a moment ago; the watch has not shown it yet
                pod_name = f"{name}-predictor-00001-deployment-{digest}-{secrets.token_hex(3)[:5]}"
                template["metadata"]["name"] = pod_name
                await self._core.create_namespaced_pod(ns, cast(Any, template))  # a raw dict body
                self._created[(ns, digest)] = (pod_name, time.monotonic())
            else:
                newest = current[0]
                if ready(newest):  # rolling update done: the old pods go
                    for p in live:
                        if p is not newest:
                            await self._delete_pod(p)
        serving = [
            p for p in pods if ready(p) and (p["metadata"].get("annotations") or {}).get(URL_ANNOTATION)
        ]
        if newest is not None and newest in serving:
            serving.insert(0, newest)
        old_addr = (((isvc.get("status") or {}).get("address")) or {}).get("url")
        address = serving[0]["metadata"]["annotations"][URL_ANNOTATION] if serving else old_addr
        status = desired_status(isvc=isvc, runtime_found=runtime is not None, pod=newest, address=address)
        old = isvc.get("status") or {}
        stamp(status, old, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        patch = merge_patch(old, status)
        if patch:
            try:
                await self._co.patch_namespaced_custom_object_status(
                    GROUP, "v1beta1", ns, "inferenceservices", name, {"status": patch}, **MERGE_KW
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return 2.0 if runtime is None else None

    def _template(self, isvc: Obj, runtime: Obj) -> Obj:
        ns = isvc["metadata"]["namespace"]
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        sa = self.sas.cache.get((ns, predictor.get("serviceAccountName") or "default"))
        ns_obj = self.namespaces.cache.get(("", ns)) or {}
        config = CredentialsConfig.from_configmap(
            self.configmaps.cache.get(("kserve", "inferenceservice-config"))
        )
        secrets_here = {k[1]: s for k, s in self.secrets.cache.items() if k[0] == ns}
        annotations = dict(isvc["metadata"].get("annotations") or {})
        annotations.update(predictor.get("annotations") or {})
        env = resolve_credentials(
            annotations=annotations, service_account=sa, secrets=secrets_here, config=config
        )
        inject = sidecar_injected(
            namespace_labels=(ns_obj.get("metadata") or {}).get("labels") or {},
            annotations=annotations,
            labels=predictor.get("labels") or {},
        )
        return build_pod(isvc=isvc, runtime=runtime, service_account=sa, storage_env=env, inject=inject)

    async def _delete_pod(self, pod: Obj) -> None:
        try:
            await self._core.delete_namespaced_pod(pod["metadata"]["name"], pod["metadata"]["namespace"])
        except ApiException as exc:
            if exc.status != 404:
                raise
