"""The running process: wiring, timers, serving, files, command line.

What lives here: :mod:`~daemon.process.loop` (the reconciler: watches and probe timers feed a
deduping :mod:`~daemon.process.workqueue`; one worker per key) and
:mod:`~daemon.process.runner` (builds it all and runs it, with leader election);
:mod:`~daemon.process.probing` and :mod:`~daemon.process.probe_sources` (the probes of
``probes/`` on timers); :mod:`~daemon.process.server` (``/metrics``, ``/healthz``, ``/readyz``),
:mod:`~daemon.process.metrics` and :mod:`~daemon.process.metric_names`;
:mod:`~daemon.process.config_files` (reads the settings file and desired manifests for the
core to parse); :mod:`~daemon.process.logging_setup`; the commands
(:mod:`~daemon.process.cli`, :mod:`~daemon.process.check`) and their
:mod:`~daemon.process.exitcodes`.

May import: :mod:`daemon.core`, :mod:`daemon.kube`, ``probes``, and any library. Never
``sandbox``, except :mod:`daemon.process.cli`, which imports ``sandbox.cli`` and
``sandbox.demo.run`` inside a function, for the ``sandbox`` and ``demo`` commands only.
"""
