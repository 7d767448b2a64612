"""The cluster's controllers, simulated so that the sandbox reacts like the seed's cluster.

Each is an asyncio task that watches the sandbox API over the wire with kubernetes_asyncio
(:mod:`.watch`: list+watch with resume and 410 relist, a keyed work queue) and writes back
through it — they never touch the API server's memory, so the daemon sees exactly what they
publish:

* :mod:`.kserve` — InferenceService → runtime (:mod:`.runtime_select`) → predictor pod
  (:mod:`.predictor_pod`); ISVC status (:mod:`.isvc_status`); Events (:mod:`.events`);
* :mod:`.kubelet` — runs each predictor pod: :mod:`.istio_proxy` (istiod lookup via DNS),
  :mod:`.storage_initializer` (credentials, download through the mesh), image pulls, and
  :mod:`.predictor` (the real model server); pod status (:mod:`.podstatus`) and logs;
* :mod:`.coredns` — a rollout restart of ``kube-system/coredns`` heals the DNS server.
"""
