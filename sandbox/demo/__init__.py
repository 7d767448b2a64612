"""``kserve-warden demo``: the seed's afternoon replayed against the sandbox, healed live.

A client of both the daemon and the sandbox, and part of neither's core: it starts the
stand-in cluster (:class:`sandbox.cluster.Sandbox`) in this process and the daemon as a real
``kserve-warden run`` *subprocess*, injects each failure through the sandbox, and reads the
daemon's reaction from the outside (its ``/metrics`` and JSON log lines), as an operator would.

* :mod:`sandbox.demo.run` — the run itself and :func:`demo_command` (the CLI entry);
* :mod:`sandbox.demo.scenarios` — the seed's failures, in the order the write-up met them;
* :mod:`sandbox.demo.report` — the outcome table and the ``--json`` document.

Imports: the rest of ``sandbox`` and ``serving`` (its log set-up); never ``daemon`` or
``probes`` (import-linter holds it, ``pyproject.toml``). ``daemon.process.cli`` imports
:mod:`sandbox.demo.run` lazily, only for ``kserve-warden demo``.
"""
