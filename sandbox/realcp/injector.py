"""Istio's sidecar injector on the wire: a mutating admission webhook the real kube-apiserver calls.

On the stand-in control plane the simulated KServe controller builds the predictor pod itself
and adds ``istio-proxy`` (:func:`sandbox.controllers.predictor_pod.build_pod`). On the real
control plane pods are made by kube-controller-manager from KServe's Deployments, so nothing adds
the sidecar unless something does what istiod does: answer the apiserver's AdmissionReview for a
Pod CREATE with a JSONPatch. :class:`SidecarInjector` is that, on a loopback HTTPS port with a
serving certificate from its own CA (``openssl``), registered by URL with that CA as
``caBundle``.

Who decides what, as in Istio:

* the **apiserver** picks the pods: :func:`webhooks` mirrors the four webhooks of the default
  revision's ``istio-sidecar-injector`` MutatingWebhookConfiguration (istiod's chart): namespace
  ``istio-injection=enabled`` unless the pod *label* ``sidecar.istio.io/inject=false``; a
  namespace without ``istio-injection`` and ``istio.io/rev`` only for a pod labelled
  ``sidecar.istio.io/inject=true``; and the same two for ``istio.io/rev=default``.
  ``failurePolicy: Fail`` (a pod that should have a proxy is never created without one),
  ``reinvocationPolicy: Never``, ``sideEffects: None`` (so dry-run requests are sent too);
* the **handler** (:func:`admission_response`, pure) decides from the pod alone, like istiod's
  ``injectRequired`` with the default policy ``enabled``: never in the system namespaces or for
  ``hostNetwork`` pods; otherwise the ``sidecar.istio.io/inject`` label, else the annotation of
  that name, decides when set (``true``/``yes``/``on``/``y`` inject, anything else does not),
  and no value at all means "inject" (the apiserver only calls for pods selected above). The
  label winning over the annotation is why this does not reuse
  :func:`~sandbox.controllers.predictor_pod.sidecar_injected` (which lets either veto); where
  both rules speak (one ``false`` or none), they agree (``tests/unit/test_sidecar_injector.py``).

The patch adds exactly what ``build_pod`` adds: the ``istio-proxy`` container and the
``sidecar.istio.io/status`` annotation. A pod that already has ``istio-proxy`` (``build_pod``'s,
or a reinvocation) is admitted unchanged. :func:`would_inject` composes both halves so a test
can state "where Istio injects" for a namespace and a pod, and check the real apiserver agrees.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.controllers.predictor_pod import INJECT_ANNOTATION, PROXY_IMAGE

CONFIGURATION_NAME = "istio-sidecar-injector"
"""The default revision's MutatingWebhookConfiguration in Istio, and ours."""
INJECT_PATH = "/inject"
PROXY_NAME = "istio-proxy"
STATUS_ANNOTATION = "sidecar.istio.io/status"
STATUS_VALUE = json.dumps({"containers": [PROXY_NAME]})
"""Exactly ``build_pod``'s value (``json.dumps`` of the same dict)."""
PROXY_CONTAINER: dict[str, Any] = {
    "name": PROXY_NAME,
    "image": PROXY_IMAGE,
    "args": ["proxy", "sidecar", "--discoveryAddress", "istiod.istio-system.svc:15012"],
}
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
"""istiod never injects here, whatever the labels say (its ``IgnoredNamespaces``)."""
REVISION = "default"
TIMEOUT_SECONDS = 10
"""Istio's. On loopback a stopped injector fails at once (connection refused): this only bounds a hung one."""
FIELD_MANAGER = "sandbox-sidecar-injector"
MWC_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
ACTIVE_TIMEOUT = 30.0
_TRUE = frozenset({"y", "yes", "true", "on"})
_REVIEW_API = "admission.k8s.io/v1"
_POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
_PROBE_NAMESPACE = "default"

Obj = dict[str, Any]


class BadReview(ValueError):
    """A request that is no AdmissionReview v1 with a uid: nothing to answer it with but HTTP 400."""


# -- the pure part -------------------------------------------------------------------------------


def inject_required(*, namespace: str, labels: Mapping[str, Any], annotations: Mapping[str, Any],
                    host_network: bool = False) -> bool:
    """istiod's decision for a pod the apiserver sent it (policy ``enabled``). Pure."""
    if host_network or namespace in IGNORED_NAMESPACES:
        return False
    # The label is the newer API and wins over the annotation when both are set.
    value = labels.get(INJECT_ANNOTATION, annotations.get(INJECT_ANNOTATION))
    if value is None or str(value) == "":
        return True
    return str(value).lower() in _TRUE


def escape_pointer(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901): ``~`` → ``~0`` first, then ``/`` → ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def has_proxy(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return any((c or {}).get("name") == PROXY_NAME for c in spec.get("containers") or [])


def sidecar_patch(pod: Mapping[str, Any]) -> list[Obj]:
    """The JSONPatch that gives ``pod`` what ``build_pod`` gives it; empty if it already has a proxy."""
    if has_proxy(pod):
        return []
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    ops: list[Obj] = []
    # "add" at "/-" needs the array, and "add" of a member needs its parent object: a pod
    # without containers (it fails validation later, but admission comes first) or without an
    # annotations map gets the whole value instead.
    if isinstance(spec.get("containers"), list):
        ops.append({"op": "add", "path": "/spec/containers/-", "value": dict(PROXY_CONTAINER)})
    else:
        ops.append({"op": "add", "path": "/spec/containers", "value": [dict(PROXY_CONTAINER)]})
    if isinstance(meta.get("annotations"), dict):
        ops.append({"op": "add", "path": f"/metadata/annotations/{escape_pointer(STATUS_ANNOTATION)}",
                    "value": STATUS_VALUE})
    else:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {STATUS_ANNOTATION: STATUS_VALUE}})
    return ops


def _review(uid: str, response: Obj) -> Obj:
    return {"apiVersion": _REVIEW_API, "kind": "AdmissionReview", "response": {"uid": uid, **response}}


def _deny(uid: str, message: str) -> Obj:
    status = {"code": 400, "reason": "BadRequest", "message": message}
    return _review(uid, {"allowed": False, "status": status})


def admission_response(review: Any) -> Obj:
    """The AdmissionReview v1 answering ``review`` (already parsed JSON). Pure.

    A Pod CREATE is allowed, with a base64 JSONPatch when istiod would inject and the pod has no
    proxy yet. A review for another kind is denied with the reason (the configuration never sends
    one); another operation on a pod is allowed untouched. Raises :class:`BadReview` when there is
    no AdmissionReview v1 request with a uid to answer.
    """
    if not isinstance(review, dict):
        raise BadReview("the body is not a JSON object")
    if review.get("apiVersion") != _REVIEW_API or review.get("kind") != "AdmissionReview":
        raise BadReview(f"expected an AdmissionReview of {_REVIEW_API}, got kind={review.get('kind')!r} "
                        f"apiVersion={review.get('apiVersion')!r}")
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("the AdmissionReview has no request.uid")
    uid = request["uid"]
    kind = request.get("kind")
    if kind != _POD_KIND:
        return _deny(uid, f"the sidecar injector admits v1 Pods only, not {kind!r}")
    if request.get("operation") != "CREATE":
        return _review(uid, {"allowed": True})
    pod = request.get("object")
    if not isinstance(pod, dict):
        return _deny(uid, "the request has no Pod object")
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return _deny(uid, "the Pod's metadata or spec is not an object")
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        return _deny(uid, "the Pod's labels or annotations are not a map")
    # The object of a CREATE may not carry its namespace yet; the request always does.
    namespace = str(request.get("namespace") or meta.get("namespace") or "")
    if not inject_required(namespace=namespace, labels=labels, annotations=annotations,
                           host_network=bool(spec.get("hostNetwork"))):
        return _review(uid, {"allowed": True})
    ops = sidecar_patch(pod)
    if not ops:
        return _review(uid, {"allowed": True})
    patch = base64.b64encode(json.dumps(ops).encode()).decode()
    return _review(uid, {"allowed": True, "patchType": "JSONPatch", "patch": patch})


def webhooks(*, url: str, ca_bundle: str) -> list[Obj]:
    """The four webhooks of Istio's default-revision ``istio-sidecar-injector``, by URL. Pure.

    ``ca_bundle`` is the base64 of the PEM CA (what ``caBundle`` holds on the wire).
    """
    not_false = {"key": INJECT_ANNOTATION, "operator": "NotIn", "values": ["false"]}
    selectors: list[tuple[str, Obj, Obj]] = [
        ("rev.namespace.", {"matchExpressions": [
            {"key": "istio.io/rev", "operator": "In", "values": [REVISION]},
            {"key": "istio-injection", "operator": "DoesNotExist"}]},
         {"matchExpressions": [not_false]}),
        ("rev.object.", {"matchExpressions": [
            {"key": "istio.io/rev", "operator": "DoesNotExist"},
            {"key": "istio-injection", "operator": "DoesNotExist"}]},
         {"matchExpressions": [not_false, {"key": "istio.io/rev", "operator": "In", "values": [REVISION]}]}),
        ("namespace.", {"matchExpressions": [
            {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]},
         {"matchExpressions": [not_false]}),
        ("object.", {"matchExpressions": [
            {"key": "istio-injection", "operator": "DoesNotExist"},
            {"key": "istio.io/rev", "operator": "DoesNotExist"}]},
         {"matchExpressions": [{"key": INJECT_ANNOTATION, "operator": "In", "values": ["true"]},
                               {"key": "istio.io/rev", "operator": "DoesNotExist"}]}),
    ]
    return [
        {
            "name": f"{prefix}sidecar-injector.istio.io",
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"], "scope": "*"}],
            "namespaceSelector": ns_sel,
            "objectSelector": obj_sel,
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "reinvocationPolicy": "Never",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": TIMEOUT_SECONDS,
        }
        for prefix, ns_sel, obj_sel in selectors
    ]


def webhook_configuration(*, url: str, ca_bundle: str, name: str = CONFIGURATION_NAME) -> Obj:
    """The MutatingWebhookConfiguration document (server-side applied by :meth:`SidecarInjector.install`)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app": "sidecar-injector", "istio.io/rev": REVISION}},
        "webhooks": webhooks(url=url, ca_bundle=ca_bundle),
    }


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """A metav1.LabelSelector against labels (absent selector: everything). Pure."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def would_inject(*, namespace_labels: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether a Pod created in a namespace with ``namespace_labels`` ends up with the proxy. Pure.

    The apiserver's half (some webhook's selectors match) and istiod's half (the handler patches).
    """
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not any(selector_matches(w["namespaceSelector"], namespace_labels)
               and selector_matches(w["objectSelector"], labels) for w in webhooks(url="", ca_bundle="")):
        return has_proxy(pod)
    review = {"apiVersion": _REVIEW_API, "kind": "AdmissionReview",
              "request": {"uid": "-", "kind": _POD_KIND, "operation": "CREATE",
                          "namespace": meta.get("namespace", ""), "object": pod}}
    return has_proxy(pod) or "patch" in admission_response(review)["response"]


# -- the server ----------------------------------------------------------------------------------


def make_certificates(workdir: Path, *, host: str) -> None:
    """``ca.crt``/``ca.key`` (the injector's own CA) and ``tls.crt``/``tls.key`` for ``host``.

    The apiserver is a Go client: it checks subjectAltName only (never the CN), so the
    loopback address goes there.
    """
    from sandbox.realcp.controlplane import issue_serving_cert, openssl

    workdir.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-days", "2", "-keyout", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=ksw-sidecar-injector-ca", cwd=workdir)
    (workdir / "ca.key").chmod(0o600)
    (workdir / "tls.ext").write_text(f"subjectAltName=IP:{host},DNS:localhost\nextendedKeyUsage=serverAuth\n")
    issue_serving_cert(workdir, name="istiod.istio-system.svc", dest=workdir, ext="tls.ext")


class SidecarInjector:
    """istiod's ``/inject`` endpoint on loopback HTTPS; ``await start()``, ``install(api)``, ...

    ``reviews`` counts the AdmissionReviews answered (a test's proof the apiserver called here).
    """

    def __init__(self, *, workdir: Path, host: str = "127.0.0.1", name: str = CONFIGURATION_NAME) -> None:
        self.dir = Path(workdir)
        self._host = host
        self.name = name
        self.port = 0
        self.reviews = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://{self._host}:{self.port}{INJECT_PATH}"

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    async def start(self) -> None:
        if shutil.which("openssl") is None:
            raise RuntimeError("openssl is needed to make the sidecar injector's certificate")
        await asyncio.to_thread(make_certificates, self.dir, host=self._host)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(self.dir / "tls.crt"), str(self.dir / "tls.key"))
        app = web.Application()
        app.router.add_post(INJECT_PATH, self._inject)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        # Bind first (port 0: the OS picks a free one) and hand aiohttp the socket: the port is
        # known without reaching into the site, and nothing else can take it in between.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, 0))
            self.port = int(sock.getsockname()[1])
            await web.SockSite(runner, sock, ssl_context=tls).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _inject(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            review = json.loads(raw)
            answer = admission_response(review)
        except (ValueError, UnicodeDecodeError) as exc:  # json's errors and BadReview are ValueErrors
            return web.Response(status=400, text=f"bad AdmissionReview: {exc}\n")
        self.reviews += 1
        return web.json_response(answer)

    def webhook_configuration(self) -> Obj:
        """The MutatingWebhookConfiguration pointing at this server (after :meth:`start`)."""
        if self._runner is None:
            raise RuntimeError("start the injector first: the configuration names its port")
        bundle = base64.b64encode(self.ca_file.read_bytes()).decode()
        return webhook_configuration(url=self.url, ca_bundle=bundle, name=self.name)

    async def install(self, api: ApiClient) -> None:
        """Server-side apply the configuration, then wait until the apiserver calls this server.

        The apiserver reads webhook configurations through an informer: a pod created right
        after the apply could still miss the webhook. A dry-run pod that opts in by label in a
        namespace without injection labels (the ``object.`` webhook) comes back with the proxy
        once the configuration is live; dry-run reaches the webhook because it has no side effects.
        """
        from sandbox.realcp import api_call  # lazily: sandbox.realcp's __init__ may import this module

        await api_call(api, "PATCH", f"{MWC_PATH}/{self.name}", self.webhook_configuration(),
                       ctype="application/apply-patch+yaml",
                       query=[("fieldManager", FIELD_MANAGER), ("force", "true")])
        await _until_probe(api, injected=True)

    async def uninstall(self, api: ApiClient) -> None:
        """Delete the configuration and wait until pods are created without this server.

        Call before :meth:`stop`: with ``failurePolicy: Fail`` a pod the apiserver still routes
        here would be refused while nothing listens.
        """
        await uninstall(api, name=self.name)


async def uninstall(api: ApiClient, *, name: str = CONFIGURATION_NAME) -> None:
    """Delete ``name`` (absent is fine) and wait until the apiserver no longer calls its webhooks."""
    from sandbox.realcp import api_call

    try:
        await api_call(api, "DELETE", f"{MWC_PATH}/{name}")
    except ApiException as exc:
        if exc.status != 404:
            raise
    await _until_probe(api, injected=False)


def probe_pod() -> Obj:
    """A pod only the ``object.`` webhook selects (label ``sidecar.istio.io/inject=true``)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "sidecar-injector-probe-", "labels": {INJECT_ANNOTATION: "true"}},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]},
    }


async def _until_probe(api: ApiClient, *, injected: bool) -> None:
    from sandbox.realcp import api_call

    deadline = time.monotonic() + ACTIVE_TIMEOUT
    while True:
        try:
            pod = await api_call(api, "POST", f"/api/v1/namespaces/{_PROBE_NAMESPACE}/pods", probe_pod(),
                                 query=[("dryRun", "All")])
            if has_proxy(pod) == injected:
                return
        except ApiException as exc:
            # 500: the webhook is still configured but not answering (a stopped injector);
            # 403: the namespace's ServiceAccount is not there yet. Both pass with time.
            if exc.status not in (403, 500) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            state = "does not call" if injected else "still calls"
            raise TimeoutError(f"after {ACTIVE_TIMEOUT:.0f}s the apiserver {state} the sidecar injector")
        # The apiserver's webhook informer has no event we can await from outside: poll briefly.
        await asyncio.sleep(0.05)
