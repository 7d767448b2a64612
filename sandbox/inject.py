"""The seed's failures, one undoable function pair each, applied to the sandbox world.

Each ``inject`` puts the world into the seed's broken state the way it broke there — by
changing objects through the API (or the DNS server's state, or the bucket) — never by
reaching into the daemon. Writes carry the field manager ``kubectl`` would use
(``kubectl-annotate``, ``kubectl-patch``): they take ownership of the fields they change, as a
human's edit does, so an applier that does not force sees the conflict it would see in a
cluster. Each ``undo`` restores what it changed (idempotent: undoing what
is already healed, e.g. by the daemon, changes nothing):

=====================  =======================================================================
``no-serving-runtime``  delete the ServingRuntime ``iris-fastapi-runtime`` (seed issue 1)
``storage-credentials`` point the ISVC's storage-secret annotation (the key the live
                        ``inferenceservice-config`` names) at ``mlpipeline-minio-artifact``,
                        the wrong secret of the seed's attempts 2-3 (issue 2)
``dns-timeout``         ``DnsServer.degraded = True``: CoreDNS slow, istiod lookups time out (3)
``mesh-policy``         delete ``kubeflow/minio-user-namespace-access`` (issue 4)
``sidecar-disabled``    annotate the ISVC ``sidecar.istio.io/inject: "false"`` (issue 4b)
``model-path``          re-upload the model as ``…/iris/model.pkl`` only, deleting ``…/iris/model``
                        — the extension mismatch of issue 5, in storage
``image-pull``          remove ``imagePullSecrets`` from ServiceAccount ``iris-sa`` (issue 6)
=====================  =======================================================================
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox import world
from sandbox.controllers.storage_initializer import DEFAULT_ANNOTATION
from sandbox.controllers.watch import MERGE_KW, Obj, read_json, response_json

NS = world.USER_NS
ISVC = "iris-model"
SA = "iris-sa"
RUNTIME = "iris-fastapi-runtime"
POLICY = "minio-user-namespace-access"
WRONG_SECRET = "mlpipeline-minio-artifact"
SIDECAR_ANNOTATION = "sidecar.istio.io/inject"

FAILURES: tuple[str, ...] = (
    "no-serving-runtime",
    "storage-credentials",
    "dns-timeout",
    "mesh-policy",
    "sidecar-disabled",
    "model-path",
    "image-pull",
)


class Degradable(Protocol):
    degraded: bool


class Bucket(Protocol):
    def rename_object(self, *, bucket: str, key: str, new_key: str) -> None: ...
    def list_keys(self, *, bucket: str, prefix: str = "") -> list[str]: ...


@dataclass
class Injector:
    """Holds what each injection replaced, so that its undo can put it back."""

    api: ApiClient
    dns: Degradable
    bucket: Bucket
    saved: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._core = CoreV1Api(self.api)
        self._co = CustomObjectsApi(self.api)
        self._table: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]] = {
            "no-serving-runtime": (self._delete_runtime, self._restore_runtime),
            "storage-credentials": (self._wrong_secret, self._right_secret),
            "dns-timeout": (self._degrade_dns, self._heal_dns),
            "mesh-policy": (self._delete_policy, self._restore_policy),
            "sidecar-disabled": (self._disable_sidecar, self._enable_sidecar),
            "model-path": (self._rename_model, self._restore_model),
            "image-pull": (self._drop_pull_secrets, self._restore_pull_secrets),
        }

    async def inject(self, name: str) -> None:
        await self._pair(name)[0]()

    async def undo(self, name: str) -> None:
        await self._pair(name)[1]()

    def _pair(self, name: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
        if name not in self._table:
            raise ValueError(f"unknown failure {name!r}; known: {', '.join(FAILURES)}")
        return self._table[name]

    # -- helpers -------------------------------------------------------------------------------

    async def _get(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Obj | None:
        try:
            return await read_json(fn, *args)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _delete(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        try:
            await response_json(await fn(*args, _preload_content=False))
        except ApiException as exc:
            if exc.status != 404:
                raise

    @staticmethod
    def _clean(obj: Obj) -> Obj:
        """An object as a user would re-apply it: no server-owned fields, no status."""
        out = copy.deepcopy(obj)
        out.pop("status", None)
        meta = out["metadata"]
        for k in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "selfLink",
        ):
            meta.pop(k, None)
        return out

    async def _patch_isvc_annotations(self, annotations: dict[str, str | None]) -> None:
        await self._co.patch_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            NS,
            "inferenceservices",
            ISVC,
            {"metadata": {"annotations": annotations}},
            field_manager="kubectl-annotate",
            **MERGE_KW,
        )

    async def _secret_annotation(self) -> str:
        cm = await self._get(self._core.read_namespaced_config_map, "inferenceservice-config", "kserve")
        try:
            creds = json.loads(((cm or {}).get("data") or {}).get("credentials") or "{}")
        except ValueError:
            creds = {}
        return str(creds.get("storageSecretNameAnnotation") or DEFAULT_ANNOTATION)

    # -- the pairs -----------------------------------------------------------------------------

    async def _delete_runtime(self) -> None:
        args = ("serving.kserve.io", "v1alpha1", NS, "servingruntimes", RUNTIME)
        current = await self._get(self._co.get_namespaced_custom_object, *args)
        if current is not None:
            self.saved["runtime"] = self._clean(current)
        await self._delete(self._co.delete_namespaced_custom_object, *args)

    async def _restore_runtime(self) -> None:
        args = ("serving.kserve.io", "v1alpha1", NS, "servingruntimes", RUNTIME)
        if await self._get(self._co.get_namespaced_custom_object, *args) is None:
            await world.apply(self.api, self.saved.pop("runtime", None) or world.runtime_object())

    async def _wrong_secret(self) -> None:
        key = await self._secret_annotation()
        isvc = await self._get(
            self._co.get_namespaced_custom_object,
            "serving.kserve.io",
            "v1beta1",
            NS,
            "inferenceservices",
            ISVC,
        )
        if "secret" not in self.saved:
            self.saved["secret"] = (key, ((isvc or {}).get("metadata") or {}).get("annotations", {}).get(key))
        await self._patch_isvc_annotations({key: WRONG_SECRET})

    async def _right_secret(self) -> None:
        key, old = self.saved.pop("secret", (await self._secret_annotation(), "minio-s3-secret"))
        await self._patch_isvc_annotations({key: old})

    async def _degrade_dns(self) -> None:
        self.dns.degraded = True

    async def _heal_dns(self) -> None:
        self.dns.degraded = False

    async def _delete_policy(self) -> None:
        args = ("security.istio.io", "v1", "kubeflow", "authorizationpolicies", POLICY)
        current = await self._get(self._co.get_namespaced_custom_object, *args)
        if current is not None:
            self.saved["policy"] = self._clean(current)
        await self._delete(self._co.delete_namespaced_custom_object, *args)

    async def _restore_policy(self) -> None:
        args = ("security.istio.io", "v1", "kubeflow", "authorizationpolicies", POLICY)
        if await self._get(self._co.get_namespaced_custom_object, *args) is None:
            await world.apply(self.api, self.saved.pop("policy", None) or world.user_policy_object())

    async def _disable_sidecar(self) -> None:
        await self._patch_isvc_annotations({SIDECAR_ANNOTATION: "false"})

    async def _enable_sidecar(self) -> None:
        await self._patch_isvc_annotations({SIDECAR_ANNOTATION: None})

    async def _rename_model(self) -> None:
        keys = await asyncio.to_thread(self.bucket.list_keys, bucket=world.BUCKET, prefix=world.MODEL_KEY)
        if world.MODEL_KEY in keys:
            await asyncio.to_thread(
                self.bucket.rename_object,
                bucket=world.BUCKET,
                key=world.MODEL_KEY,
                new_key=world.MODEL_KEY + ".pkl",
            )

    async def _restore_model(self) -> None:
        keys = await asyncio.to_thread(self.bucket.list_keys, bucket=world.BUCKET, prefix=world.MODEL_KEY)
        if world.MODEL_KEY not in keys and world.MODEL_KEY + ".pkl" in keys:
            await asyncio.to_thread(
                self.bucket.rename_object,
                bucket=world.BUCKET,
                key=world.MODEL_KEY + ".pkl",
                new_key=world.MODEL_KEY,
            )

    async def _drop_pull_secrets(self) -> None:
        sa = await self._get(self._core.read_namespaced_service_account, SA, NS)
        if sa is not None and "pull" not in self.saved:
            self.saved["pull"] = sa.get("imagePullSecrets") or []
        await self._core.patch_namespaced_service_account(
            SA, NS, {"imagePullSecrets": None}, field_manager="kubectl-patch", **MERGE_KW
        )

    async def _restore_pull_secrets(self) -> None:
        pull = self.saved.pop("pull", None) or [{"name": "harbor-credentials"}]
        sa = await self._get(self._core.read_namespaced_service_account, SA, NS)
        if sa is not None and not sa.get("imagePullSecrets"):
            await self._core.patch_namespaced_service_account(
                SA, NS, {"imagePullSecrets": pull}, field_manager="kubectl-patch", **MERGE_KW
            )
