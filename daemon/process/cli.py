"""``kserve-warden`` command line: argument parsing and dispatch, nothing at import time.

Each sub-command lives in its own module and is imported lazily, so ``kserve-warden run``
never imports the sandbox (the daemon's image does not need moto or dnslib) and
``--help`` stays fast. ``sandbox`` and ``demo`` are the sandbox's own entry points
(:mod:`sandbox.cli`, :mod:`sandbox.demo`): the only imports of ``sandbox`` from ``daemon``,
inside :func:`main`, and the ones import-linter's contracts let through. Without the
``sandbox`` extra installed they end in one line and exit 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from daemon.core.thresholds import DEFAULT_FAILURE_THRESHOLD, DEFAULT_OUTPUT_THRESHOLD, SEVERITIES
from daemon.process.exitcodes import EXIT_BAD_INPUT

# The top-level modules of the `sandbox` extra (pyproject.toml), and what to say without them.
SANDBOX_EXTRA_MODULES = frozenset({"moto", "dnslib"})
SANDBOX_EXTRA_MISSING = "the sandbox needs the 'sandbox' extra: pip install 'kserve-warden[sandbox]'"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=("json", "console"), default="json",
                   help="log line format on stderr (default: json)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="lowest level logged on stderr (default: info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kserve-warden",
        description="Keep a KServe deployment applied, probed, diagnosed and safely healed.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (in-cluster config, else kubeconfig)")
    run.add_argument("--config", help="warden settings file (default: the embedded config)")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument("--dry-run", action="store_true", help="decide and log, but write nothing")
    run.add_argument("--once", action="store_true", help="one full pass, then exit")
    _common(run)

    check = sub.add_parser(
        "check", help="one pass: observe, diagnose, print findings",
        description="One pass: observe, diagnose, print the findings with evidence and fix. Exit "
                    "0 when no finding is at or above --failure-threshold, 1 when one is, 2 on "
                    "bad input (settings, desired state, kubeconfig, an API out of reach).")
    check.add_argument("--config", help="warden settings file (default: the embedded config)")
    check.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    check.add_argument("--output", "-o", choices=("text", "json"), default="text",
                       help="text: a table and a detail block per finding; json: one document "
                            "(default: text)")
    check.add_argument("--failure-threshold", choices=SEVERITIES, default=DEFAULT_FAILURE_THRESHOLD.value,
                       help="exit 1 when a finding is at or above this severity (default: "
                            "warning; INFO 'not checked' notes alone exit 0)")
    check.add_argument("--output-threshold", choices=SEVERITIES, default=DEFAULT_OUTPUT_THRESHOLD.value,
                       help="print only findings at or above this severity, in text and JSON; "
                            "the exit code still follows --failure-threshold (default: info)")
    check.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="only this namespace (repeatable; overrides scope.namespaces): its "
                            "InferenceServices, and the desired objects that live there")
    check.add_argument("--selector", "-l", metavar="SELECTOR",
                       help="label selector, e.g. team=ml,tier!=dev (overrides scope.selector): "
                            "the InferenceServices it selects, and the desired objects whose own "
                            "labels match it, as kubectl apply -l")
    check.add_argument("--all-namespaces", "-A", action="store_true",
                       help="every namespace (the default unless scope.namespaces is set)")
    _common(check)

    sb = sub.add_parser("sandbox", help="start the local stand-in cluster and print its endpoints")
    sb.add_argument("--kubeconfig", help="write a kubeconfig for the sandbox API here")
    sb.add_argument("--warden-config", help="write a warden settings file for the sandbox here")
    sb.add_argument("--host", default="127.0.0.1", help="the address every endpoint listens on "
                    "(default: 127.0.0.1)")
    sb.add_argument("--control-plane", choices=("embedded", "real"), default="embedded",
                    help="the stand-in API (default) or a real kube-apiserver, etcd and "
                         "kube-controller-manager built by scripts/control-plane.sh")
    _common(sb)

    demo = sub.add_parser("demo", help="replay the seed's failures against the sandbox, healed live")
    demo.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    demo.add_argument("--scenario", action="append", default=[], metavar="NAME",
                      help="run only this scenario (repeatable)")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    demo.add_argument("--control-plane", choices=("embedded", "real"), default="embedded",
                      help="run the sandbox on the stand-in API (default) or the real control plane")
    _common(demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from daemon.process.runner import run_command

        return run_command(args)
    if args.command == "check":
        from daemon.process.check import check_command

        return check_command(args)
    if args.command in ("sandbox", "demo"):
        return _sandbox_command(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guarantees one


def _sandbox_command(args: argparse.Namespace) -> int:
    """``sandbox`` or ``demo``, imported only now; one line and exit 2 without the extra."""
    try:
        if args.command == "sandbox":
            from sandbox.cli import sandbox_command as command
        else:
            from sandbox.demo.run import demo_command as command
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in SANDBOX_EXTRA_MODULES:
            raise
        print(SANDBOX_EXTRA_MISSING, file=sys.stderr)
        return EXIT_BAD_INPUT
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
