"""kserve-warden's daemon: observe, diff, diagnose, plan, act.

The public surface is the CLI (``kserve-warden run|check|sandbox|demo``). Inside, the
shape is "data in, pure decisions, effects at the edge", one sub-package per layer; a layer
imports only the layers below it (import-linter holds it, ``pyproject.toml``; map in
``docs/layout.md``):

* :mod:`daemon.core` — the pure decisions: desired state and settings (parsed from text),
  diff, diagnosis, plan and its guards, the data they pass around. No I/O import at all;
* :mod:`daemon.kube` — the Kubernetes edge: effects (the only writer), watch caches,
  leader election, client errors translated to the core's typed errors, the RBAC it needs;
* :mod:`daemon.process` — the running process: the reconcile loop and its work queue, probe
  timers, the metrics/health server, settings and manifest files, logging set-up, the CLI.

``daemon/defaults/`` holds the embedded settings and desired state (package data).
"""
