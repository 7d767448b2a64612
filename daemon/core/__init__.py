"""The pure decision core: data in, decisions out, no I/O.

What lives here: the desired state (:mod:`~daemon.core.desired`, parsed from text already
read) and the settings schema (:mod:`~daemon.core.settings`, :mod:`~daemon.core.typed_yaml`);
the views of the cluster the decisions read (:mod:`~daemon.core.world`,
:mod:`~daemon.core.objects`, :mod:`~daemon.core.resources`); :mod:`~daemon.core.diff`,
:mod:`~daemon.core.diagnosis` (one root cause per failure, a :class:`~daemon.core.findings.Finding`
each) and :mod:`~daemon.core.plan` (every guard: allow-list, back-off, budgets via
:mod:`~daemon.core.ledger`, hysteresis, dry-run) turning findings into
:mod:`~daemon.core.actions`; Istio policy evaluation (:mod:`~daemon.core.authz`); the typed
API errors and retry delays (:mod:`~daemon.core.errors`, :mod:`~daemon.core.backoff`);
secret derivation rules (:mod:`~daemon.core.secret_derivation`); timestamps; logger handles
and the secret redactor (:mod:`~daemon.core.logs`, which configures no output).

May import: the standard library's pure parts, PyYAML, structlog (logger handles only), and
the pure data modules of ``probes`` (``probes.observation``, ``probes.credentials``). Never
``daemon.kube`` or ``daemon.process``, and no I/O library: not ``asyncio``, ``aiohttp``,
``kubernetes_asyncio``, ``aiobotocore``, ``socket`` or ``subprocess``. Functions here take
``now`` and their inputs as arguments, so unit tests are tables.
"""
