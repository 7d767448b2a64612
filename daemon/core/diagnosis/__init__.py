"""``diagnose()``: from live objects, drift and probe observations to named root causes.

Pure: the World (live objects, secrets hashed), the concrete desired objects, their drift,
recent probe observations, the settings and ``now`` in; :class:`Finding` s out. One finding
per *root cause*: symptoms a cause explains are folded into its ``caused`` instead of being
reported again (a slow CoreDNS explains an unready istio-proxy and an unready predictor:
one ``dns-latency-high``, not three alerts), and drift that a specific finding explains is
claimed by it instead of showing up as generic ``drift``.

Every finding carries evidence (condition messages, container states, log lines, probe
outcomes; never a secret value), a plain-English explanation, the remedy (what the daemon
will change, or the exact command a person must run) and, in ``data``, what ``plan()`` may
do about it (see :mod:`daemon.core.plan` for the keys).

Some causes are judged statically, before any pod tries: which secret KServe would hand
the storage-initializer (the way KServe resolves it, with the annotation key from the live
``inferenceservice-config``); whether the mesh would admit the model's ServiceAccount to the
object store its own endpoint names (:func:`daemon.core.authz.evaluate`); whether a runtime
would be selected for the model's format, version and protocol; whether sidecar injection is off
while a policy is meant to admit the model. What cannot be judged is ``not-checked`` (info).
Every model-scoped finding carries ``inferenceservice`` (``namespace/name``).

``observations`` should hold the recent history of each probe (a few runs per target), oldest
first or in any order: the latest run per target is the current state, and the run of
consecutive bad DNS probes feeds the restart hysteresis. Runs older than three periods of
their probe are stale and ignored.

Layout: :mod:`.run` holds :func:`diagnose` and the order the rules run in; :mod:`.context`
the per-pass state (indexes, claims, drafts), :mod:`.model` what is known about one model,
:mod:`.draft` a finding under construction, :mod:`.text` the explanations, :mod:`.fields`
the raw-JSON readers. Each rule lives in the module named for what it diagnoses:
:mod:`.runtime`, :mod:`.mesh`, :mod:`.credentials`, :mod:`.storage_source` (and
:mod:`.storage_spec` for KServe's storage spec), :mod:`.store`,
:mod:`.image_pull`, :mod:`.download` (the storage-initializer's own failure: a storage cause,
never the model's format), :mod:`.model_files`, :mod:`.storage`, :mod:`.readiness`, :mod:`.dns`,
:mod:`.predictor`, :mod:`.drift`, and for what the scheduler and the kubelet record on the pods
:mod:`.scheduling` (Unschedulable, judged against the Nodes), :mod:`.resources` (OOMKilled, evicted
for ephemeral storage, CrashLoopBackOff) and :mod:`.staleness` (Ready while pods crash-loop), with
:mod:`.pods` reading container statuses; :mod:`.spec` reads every InferenceService shape, and
:mod:`.model_layouts` holds what each runtime loads from the storageUri (the remedies' files).
"""

from daemon.core.diagnosis.run import diagnose

__all__ = ["diagnose"]
