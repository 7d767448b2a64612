"""kserve-warden's daemon: observe, diff, diagnose, plan, act.

The public surface is the CLI (``kserve-warden run|check|sandbox|demo``). Inside, the
shape is "data in, pure decisions, effects at the edge":

* ``desired`` / ``settings`` load and validate configuration (pure after parsing);
* ``diff``, ``diagnose`` and ``plan`` are pure functions of their inputs and ``now``;
* ``kube`` is the only module that talks to the Kubernetes API;
* ``loop`` wires watches, probe timers and workers together; ``leader`` holds the Lease;
* ``server`` serves ``/metrics``, ``/healthz`` and ``/readyz``.
"""
