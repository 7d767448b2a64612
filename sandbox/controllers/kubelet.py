"""The kubelet, simulated: one worker per predictor pod, running its containers in order.

It watches pods labelled ``serving.kserve.io/inferenceservice`` (the only pods the sandbox
runs) and, for each, runs what a node would, retrying with a short capped backoff so that
fixing a cause through the API is enough for the pod to recover:

1. ``istio-proxy`` when injected (a native sidecar, see :mod:`.istio_proxy`): resolve istiod;
   re-checked every second for the pod's life, so degraded DNS makes a running pod unready.
2. ``storage-initializer`` (:mod:`.storage_initializer`): fetch the model through the mesh —
   the pod's own sidecar listener when the proxy is ready, else a connection the STRICT-mTLS
   storage side resets. Failure → ``Init:Error`` and the log line; retried.
3. Image pull of ``kserve-container`` (:func:`pull_image`): an image on a private registry
   needs an ``imagePullSecrets`` entry naming an existing ``kubernetes.io/dockerconfigjson``
   secret with ``auths`` for that registry, else ``ImagePullBackOff`` with
   ``401 Unauthorized`` and Warning Events ``Failed``/``BackOff``.
4. ``kserve-container`` (:mod:`.predictor`): the real server; a model that does not load →
   ``CrashLoopBackOff`` with the loader's error. Init containers are not re-run for it: a
   pod whose download was wrong must be recreated, as in a cluster.

Status goes to ``pods/status`` (merge patch), logs to the sandbox-only log endpoint, and the
predictor's address to the pod annotation ``URL_ANNOTATION``. Deleting the pod stops its
server and removes its model directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import structlog
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.controllers import istio_proxy, storage_initializer
from sandbox.controllers.events import EventRecorder
from sandbox.controllers.podstatus import PodRun, pod_status
from sandbox.controllers.predictor import PredictorServer
from sandbox.controllers.predictor_pod import LABEL_ISVC, URL_ANNOTATION
from sandbox.controllers.watch import (
    MERGE_KW,
    Informer,
    Obj,
    merge_patch,
    read_json,
    retryable,
)

log = structlog.get_logger("sandbox.kubelet")
PRIVATE_REGISTRIES = ("192.168.58.12:30002/", "ghcr.io/kserve-warden/")
PROXY_RECHECK = 1.0
PROXY_RETRY = 0.5
BACKOFF = (0.2, 2.0)

SidecarFor = Callable[[str | None], Awaitable[str]]
"""principal (None: no working sidecar) -> the egress ``host:port`` (``Mesh.sidecar``)."""


def registry_of(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"


def pull_image(*, image: str, secrets: list[Obj | None], private: tuple[str, ...]) -> str | None:
    """None when ``image`` can be pulled with ``secrets``, else the kubelet's error. Pure."""
    if not any(image.startswith(p) for p in private):
        return None
    host = registry_of(image)
    for s in secrets:
        if not s or s.get("type") != "kubernetes.io/dockerconfigjson":
            continue
        try:
            cfg = json.loads(base64.b64decode((s.get("data") or {}).get(".dockerconfigjson", "")))
        except ValueError:
            continue
        if host in (cfg.get("auths") or {}):
            return None
    return (
        f'Failed to pull image "{image}": rpc error: code = Unknown desc = failed to pull and unpack '
        f'image "{image}": failed to resolve reference "{image}": unexpected status code 401 Unauthorized'
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    def __init__(
        self,
        api: ApiClient,
        *,
        workdir: Path,
        dns: tuple[str, int],
        sidecar_for: SidecarFor,
        private_registries: tuple[str, ...] = PRIVATE_REGISTRIES,
        node_names: tuple[str, ...] | None = None,
        log_url: str | None = None,
    ) -> None:
        """``node_names``: the Nodes this kubelet is the kubelet of (the real control plane: it runs
        only the pods kube-scheduler bound to one of them, and a pod it never binds stays Pending,
        as on a node); None: every pod, unbound (the stand-in API has no scheduler). ``log_url``:
        where container logs are written (default: the stand-in API's own log endpoint)."""
        self._nodes = frozenset(node_names) if node_names is not None else None
        self._log_url = log_url
        self._api = api
        self._core = CoreV1Api(api)
        self._events = EventRecorder(api, component="kubelet")
        self._workdir = workdir
        self._dns = dns
        self._sidecar_for = sidecar_for
        self._private = private_registries
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._finalizing: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.pods = Informer(
            self._core.list_pod_for_all_namespaces,
            on_change=self._on_pod,
            name="kubelet-pods",
            label_selector=LABEL_ISVC,
        )

    def _on_pod(self, type_: str, pod: Obj) -> None:
        uid = str(pod["metadata"].get("uid"))
        if type_ == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            task = self._workers.pop(uid, None)
            if task is not None:
                task.cancel()
            if type_ != "DELETED" and self._nodes and pod["spec"].get("nodeName") in self._nodes:
                # A real apiserver deletes a bound pod gracefully: it stays (Terminating) until
                # its node's kubelet has stopped the containers and deletes it for good.
                done = asyncio.create_task(
                    self._finalize(pod, task), name=f"kubelet-finalize-{pod['metadata']['name']}"
                )
                self._finalizing.add(done)
                done.add_done_callback(self._finalizing.discard)
        elif uid not in self._workers and (self._nodes is None or pod["spec"].get("nodeName") in self._nodes):
            self._workers[uid] = asyncio.create_task(
                self._run_pod(pod), name=f"kubelet-{pod['metadata']['name']}"
            )

    async def run(self) -> None:
        self._session = aiohttp.ClientSession()
        try:
            await self.pods.run()
        finally:
            workers = list(self._workers.values()) + list(self._finalizing)
            self._workers.clear()
            self._finalizing.clear()
            for t in workers:
                t.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self._session.close()

    async def _set_log(self, pod: Obj, container: str, text: str) -> None:
        assert self._session is not None
        meta = pod["metadata"]
        url = (
            f"{self._log_url or self._api.configuration.host}/sandbox/v1/namespaces/{meta['namespace']}/pods/"
            f"{meta['name']}/log"
        )
        async with self._session.put(
            url, params={"container": container}, data=text.encode(), headers={"Content-Type": "text/plain"}
        ) as r:
            await r.read()

    async def _secret(self, namespace: str, name: str) -> Obj | None:
        try:
            return await read_json(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _finalize(self, pod: Obj, worker: asyncio.Task[None] | None) -> None:
        if worker is not None:
            await asyncio.gather(worker, return_exceptions=True)  # containers stopped
        meta = pod["metadata"]
        try:
            await self._core.delete_namespaced_pod(
                meta["name"], meta["namespace"],
                # In the body: with a body, the server reads the options from it, not the query.
                body=cast(Any, {"gracePeriodSeconds": 0, "preconditions": {"uid": meta.get("uid")}}),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a new pod took the name
                log.warning("kubelet.finalize_failed", pod=meta["name"], error=exc.status)

    async def _back_off(self, pod: Obj, container: str) -> None:
        name = pod["metadata"]["name"]
        await self._events.record(
            pod,
            type_="Warning",
            reason="BackOff",
            message=f"Back-off restarting failed container {container} in pod {name}",
        )

    async def _run_pod(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        model_dir = self._workdir / "pods" / ns / name / "models"
        main = next(c for c in spec["containers"] if c["name"] != "istio-proxy")
        init = (spec.get("initContainers") or [{}])[0]
        run = PodRun(
            start_time=_now(),
            main_container=main["name"],
            main_image=main.get("image", ""),
            has_proxy=any(c["name"] == "istio-proxy" for c in spec["containers"]),
        )
        principal = f"cluster.local/ns/{ns}/sa/{spec.get('serviceAccountName') or 'default'}"
        server: PredictorServer | None = None
        sent: Obj = {}
        logs: dict[str, str] = {}
        written: dict[str, str] = {}
        published = ""
        delay = BACKOFF[0]
        pod = {**pod, "kind": "Pod", "apiVersion": "v1"}
        try:
            while True:
                try:
                    if run.has_proxy:
                        proxy = await istio_proxy.check_istiod(nameserver=self._dns[0], port=self._dns[1])
                        if proxy.ready != run.proxy_ready or "istio-proxy" not in written:
                            logs["istio-proxy"] = proxy.log
                        run.proxy_ready = proxy.ready
                    if run.init != "done":
                        run.init = "running"
                        # Only a ready proxy carries the pod's mTLS identity; without one the
                        # storage side's STRICT mTLS resets the plaintext connection.
                        sidecar = await self._sidecar_for(
                            principal if run.has_proxy and run.proxy_ready else None
                        )
                        shutil.rmtree(model_dir, ignore_errors=True)
                        result = await storage_initializer.download(
                            uri=str((init.get("args") or [""])[0]),
                            env=list(init.get("env") or []),
                            namespace=ns,
                            read_secret=self._secret,
                            sidecar=sidecar,
                            dest=model_dir,
                        )
                        logs["storage-initializer"] = result.log
                        run.init, run.init_message = ("done", "") if result.ok else ("failed", result.log)
                        run.init_restarts += 0 if result.ok else 1
                        if not result.ok:
                            await self._back_off(pod, "storage-initializer")
                    if run.init == "done" and run.main != "running":
                        secrets = [
                            await self._secret(ns, str(s.get("name")))
                            for s in spec.get("imagePullSecrets") or []
                        ]
                        error = pull_image(image=run.main_image, secrets=secrets, private=self._private)
                        if error is not None:
                            run.main, run.main_message = "pull-failed", error
                            await self._events.record(pod, type_="Warning", reason="Failed", message=error)
                            await self._events.record(
                                pod,
                                type_="Warning",
                                reason="BackOff",
                                message=f'Back-off pulling image "{run.main_image}"',
                            )
                        else:
                            server = PredictorServer(
                                model_name=meta["labels"][LABEL_ISVC], model_dir=model_dir
                            )
                            started = await server.start()
                            logs[run.main_container] = started.log
                            if started.ok:
                                run.main, run.main_message = "running", ""
                            else:
                                server = None
                                run.main, run.main_message = "crashed", started.log
                                run.main_restarts += 1
                                await self._back_off(pod, run.main_container)
                    if server is not None and run.main == "running" and published != server.url:
                        # Where the predictor listens, for the KServe controller's status.address.
                        await self._core.patch_namespaced_pod(
                            name, ns, {"metadata": {"annotations": {URL_ANNOTATION: server.url}}}, **MERGE_KW
                        )
                        published = server.url
                    for container, text in logs.items():
                        if written.get(container) != text:
                            await self._set_log(pod, container, text)
                            written[container] = text
                    status = pod_status(run)
                    patch = merge_patch(sent, status)
                    if patch:
                        await self._core.patch_namespaced_pod_status(name, ns, {"status": patch}, **MERGE_KW)
                        sent = status
                    logs.clear()
                except ApiException as exc:
                    if exc.status == 404:
                        return  # the pod is gone; the DELETED event cancels us too
                    log.debug("kubelet.retry", pod=name, error=exc.status, body=str(exc.body)[:600])
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if not retryable(exc):
                        raise
                if run.ready:
                    delay = PROXY_RECHECK
                elif run.init == "failed" or run.main in ("pull-failed", "crashed"):
                    delay = min(delay * 2, BACKOFF[1])  # back off like the kubelet, capped short
                elif run.has_proxy and not run.proxy_ready:
                    delay = PROXY_RETRY  # Envoy retries istiod on its own, without a growing backoff
                else:
                    delay = BACKOFF[0]
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    # A cancel swallowed below us (asyncio.wait_for in dnspython's timeout can
                    # lose one on Python 3.11, gh-86296) must still end the worker.
                    raise asyncio.CancelledError
                await asyncio.sleep(delay)
        finally:
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop()
            shutil.rmtree(model_dir.parent, ignore_errors=True)
