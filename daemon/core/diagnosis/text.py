"""The plain-English explanation of each finding code: one table, one sentence or three per code.

Kept apart from the rules that produce the findings so the wording can be read (and reviewed)
in one place; :class:`daemon.core.diagnosis.draft.Draft` looks its explanation up here, so a
``Code`` without an entry fails the first time it is found (the unit tests produce every code).
"""

from __future__ import annotations

from daemon.core.findings import Code

EXPLAIN: dict[Code, str] = {
    Code.NO_SERVING_RUNTIME: (
        "KServe found no ServingRuntime that supports the model's format, so it never creates "
        "the predictor ('no runtime found to support predictor with model type')."
    ),
    Code.STORAGE_CREDENTIALS_MISSING: (
        "The storage-initializer gets no usable S3 credentials, so downloading the model fails "
        "with NoCredentialsError (or the credentials it gets are rejected). With KServe's storage "
        "spec, a storage-config Secret or key it cannot find makes KServe refuse the predictor pod "
        "itself."
    ),
    Code.STORAGE_SECRET_FORMAT: (
        "The secret KServe would use for storage does not hold AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY (e.g. MinIO's accesskey/secretkey). KServe skips such a secret "
        "silently and the download fails with NoCredentialsError."
    ),
    Code.STORAGE_SECRET_ANNOTATION: (
        "The annotation that names the storage secret is not the one this KServe reads, or "
        "names the wrong secret. kustomize installs read serving.kserve.io/storageSecretName, "
        "Helm installs serving.kserve.io/secretName (inferenceservice-config, "
        "credentials.storageSecretNameAnnotation); the other key is ignored without a word."
    ),
    Code.STORAGE_UNREACHABLE: (
        "The model's store (an S3 endpoint, GCS, the Hugging Face hub, an HTTP server) cannot be "
        "reached from the model's side, for a reason not explained by DNS, the mesh policy or "
        "sidecar injection: the storage-initializer cannot download the model."
    ),
    Code.MESH_POLICY_DENIES: (
        "An Istio AuthorizationPolicy on the object store does not admit the model's "
        "ServiceAccount principal, so the storage-initializer is refused (RBAC: access denied, "
        "or a connection error on the client)."
    ),
    Code.SIDECAR_DISABLED_POLICY_UNENFORCED: (
        "Sidecar injection is disabled for the model, so its traffic carries no mesh identity: "
        "no AuthorizationPolicy rule on a principal or namespace can match it (not even one written "
        "to admit it), and mTLS is off. "
        "Disabling injection is not a fix for DNS trouble; fix DNS instead."
    ),
    Code.DNS_LATENCY_HIGH: (
        "Cluster DNS is slow or failing for istiod; the istio-proxy sidecar cannot get its "
        "certificate ('lookup istiod.istio-system.svc: i/o timeout'), so the pod never becomes "
        "ready."
    ),
    Code.MODEL_NOT_FOUND: (
        "The model the server needs is not where the storageUri points (the storage-initializer "
        "found nothing to download, or the server looked for a file that is not there)."
    ),
    Code.MODEL_WRONG_FORMAT: (
        "The files at the storageUri were downloaded, but they are not a model the runtime can "
        "load (or it failed to load them)."
    ),
    Code.WRONG_MODEL: (
        "The predictor is up but answers the canary input wrongly: it is not serving the "
        "trained model (the seed's silent dummy-model fallback)."
    ),
    Code.IMAGE_PULL_UNAUTHORIZED: (
        "The registry refuses to serve the predictor image (401 Unauthorized): the pod has no "
        "pull secret for it. Pods take imagePullSecrets from their ServiceAccount at creation, "
        "so pods created before the fix stay stuck until recreated."
    ),
    Code.PREDICTOR_NOT_READY: "The predictor is not ready, for a reason not diagnosed more precisely.",
    Code.DRIFT: "A desired object is missing or differs from its desired state.",
    Code.NOT_CHECKED: (
        "Something about this model could not be judged (an unknown storage scheme, a secret the "
        "daemon may not read, an object it cannot see). Not a failure: it is said so that silence "
        "is never mistaken for health."
    ),
    Code.RUNTIME_DISABLED: (
        "The runtime the model needs (named, or the only one that auto-selects its format) is "
        "disabled (spec.disabled: true), so KServe does not use it."
    ),
    Code.RUNTIME_VERSION_UNSUPPORTED: (
        "The model asks for a modelFormat version no runtime lists: KServe matches "
        "name:version exactly, so the predictor is never created."
    ),
    Code.PVC_NOT_BOUND: (
        "The model is stored on a PersistentVolumeClaim (pvc://) that does not exist or is not "
        "Bound, so the predictor pod cannot mount it."
    ),
    Code.PEER_AUTHENTICATION_STRICT_NO_SIDECAR: (
        "The object store requires mutual TLS (PeerAuthentication STRICT) but the model's pods "
        "have no sidecar, so their plaintext connections are refused."
    ),
    Code.MESH_POLICY_NOT_EVALUATED: (
        "An AuthorizationPolicy on the object store could decide this model's access but was not "
        "evaluated (a CUSTOM external authorizer, or rules on request attributes known only at "
        "request time). Not a denial; not a proof of access either."
    ),
    Code.ISTIO_REVISION_MISSING: (
        "The namespace asks for sidecars from an Istio revision (istio.io/rev) that is not "
        "installed: new pods get no sidecar, silently."
    ),
    Code.STORAGE_ACCESS_DENIED: (
        "The store answered the storage-initializer with 403: the identity the download runs as "
        "(the ServiceAccount's credentials, workload identity, a token) may not read the model "
        "(IAM or bucket policy, a gated Hugging Face repository, a private URL)."
    ),
    Code.STORAGE_URI_UNSUPPORTED: (
        "KServe's storage-initializer does not recognise the storageUri ('Cannot recognize storage "
        "type'): its scheme or shape is none it downloads, so the predictor never starts."
    ),
    Code.STORAGE_DOWNLOAD_FAILED: (
        "The storage-initializer failed to download the model, for a reason its log states in "
        "words not recognised here: the model never reached the server. Its log says why."
    ),
    Code.COMPONENT_NOT_READY: (
        "A component of the InferenceService other than the predictor (transformer, explainer, "
        "or its ingress route) is not ready, so requests through it fail."
    ),
    # -- resources, scheduling, staleness -------------------------------------------------------
    Code.OOM_KILLED: (
        "A container of the model's pod was killed for exceeding its memory limit (OOMKilled, exit "
        "code 137): the model server loading a model larger than its limit, or the storage-initializer "
        "downloading one. It restarts and is killed again; KServe may call it a failed model load."
    ),
    Code.EVICTED_EPHEMERAL_STORAGE: (
        "The kubelet evicted the predictor pod for ephemeral storage: the model is downloaded into an "
        "emptyDir on the node's disk, and it (or what the server writes) exceeded a limit or the "
        "node's free disk."
    ),
    Code.CRASH_LOOP: (
        "A container of the model's pod exits by itself and the kubelet restarts it with a growing "
        "back-off (CrashLoopBackOff). Its last log line says why; no more specific cause was found."
    ),
    Code.UNSCHEDULABLE_INSUFFICIENT_RESOURCES: (
        "The scheduler cannot place the predictor pod: no node has the CPU, memory or GPUs it "
        "requests free (or at all), so the pod stays Pending."
    ),
    Code.UNSCHEDULABLE_UNTOLERATED_TAINT: (
        "The node that could run the predictor pod (e.g. the GPU node) carries a taint the pod does "
        "not tolerate, so the scheduler keeps it off that node and the pod stays Pending."
    ),
    Code.UNSCHEDULABLE_NO_MATCHING_NODE: (
        "The predictor's nodeSelector or required node affinity matches no node that could hold it, "
        "so the pod stays Pending."
    ),
    Code.UNSCHEDULABLE: (
        "The scheduler cannot place the predictor pod: the node that could hold it is cordoned or not "
        "ready (or the Nodes are not visible to judge why)."
    ),
    Code.READY_BUT_CRASH_LOOPING: (
        "The InferenceService reports Ready while its pods crash-loop: KServe's status reflects the "
        "rollout it last saw, not the pods now. Requests fail (or depend on one old pod) with no "
        "other alarm."
    ),
}
