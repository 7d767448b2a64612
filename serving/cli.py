"""``python -m serving``: command line, start-up and shutdown of the model server.

Flags use KServe's names (``--model_dir``, ``--model_name``, ``--http_port``) and the dashed
forms too. Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when no real model loads
(the message lists every file found and why it failed), 2 for bad arguments.

``--workers N`` runs N server processes sharing the port with ``SO_REUSEPORT`` (the kernel
spreads connections); this process supervises them, forwards SIGTERM/SIGINT, and exits with
the first non-zero child status. Each worker keeps its own metrics registry, so ``/metrics``
shows the worker that answered the scrape.

``--grpc_port`` (KServe's name; default 8081 like KServe's servers; 0 or ``--enable_grpc false``
turns it off) serves the Open Inference Protocol over gRPC from the same process, event loop and
model (:mod:`serving.grpc_server`); with ``--workers`` every worker shares it like the HTTP port.

Limits (:mod:`serving.limits`; per process): ``--header-timeout`` (10 s) for a request's line
and headers, ``--body-timeout`` (30 s) for its body (408 after), ``--body-min-rate`` (500
bytes/s after ``--body-grace``, 5 s: a slower body gets 408), ``--keepalive-timeout`` (75 s) for
an idle keep-alive connection, ``--max-connections`` (1000; over it the connection still
sending a request that is nearest its deadline — the oldest header, the slowest body — is closed
to make room, else the new one gets 503) and ``--max-inflight-body-bytes`` (64 MiB of REST
bodies and gRPC messages over 64 KiB in flight; more REST bodies wait, then 503; more gRPC
calls get RESOURCE_EXHAUSTED).
The open-files limit is raised to fit ``--max-connections`` when the hard limit allows, else
the cap is lowered to fit it. Every log line is one JSON object, errors rate-limited
(:mod:`serving.logs`).

Flags KServe passes that this server does not use are accepted and logged as ignored, so a
ServingRuntime written for KServe's servers does not crash-loop.
"""

from __future__ import annotations

import argparse
import gc
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import disable_created_metrics

from serving import limits
from serving.app import DEFAULT_MAX_BODY_BYTES
from serving.loader import ModelLoadError
from serving.logs import configure, get_logger


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving", description="XGBoost / scikit-learn model server "
                                "(KServe V1 + Open Inference Protocol V2); never serves a dummy model.")
    p.add_argument("--model_dir", "--model-dir", dest="model_dir", type=Path, required=True,
                   help="directory holding the model (model, model.json, .ubj, .bst, .pkl, .joblib)")
    p.add_argument("--model_name", "--model-name", dest="model_name", default="model")
    p.add_argument("--http_port", "--http-port", dest="http_port", type=int, default=8080)
    p.add_argument("--grpc_port", "--grpc-port", dest="grpc_port", type=int, default=8081,
                   help="gRPC (Open Inference Protocol) port; 0 turns gRPC off")
    p.add_argument("--enable_grpc", "--enable-grpc", dest="enable_grpc", type=_boolean, default=True,
                   help="false turns gRPC off, as in KServe's servers")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--workers", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--wait-for-model", "--wait_for_model", dest="wait_for_model", action="store_true",
                   help="start unready and poll model_dir until a real model appears, instead of exiting")
    p.add_argument("--max-body-bytes", "--max_body_bytes", dest="max_body_bytes", type=int,
                   default=DEFAULT_MAX_BODY_BYTES, help="larger request bodies get 413")
    p.add_argument("--predict-proba", "--predict_proba", dest="predict_proba", action="store_true",
                   default=None, help="V1 :predict returns probabilities (also PREDICT_PROBA=true, "
                   "as in KServe's sklearnserver)")
    p.add_argument("--nthread", type=int, default=1, help="XGBoost threads per model call")
    limits.add_arguments(p)
    p.add_argument("--log-format", "--log_format", dest="log_format", choices=("json", "console"),
                   default="json")
    p.add_argument("--log-level", "--log_level", dest="log_level", default="info")
    p.add_argument("--reuse-port", dest="reuse_port", action="store_true", help=argparse.SUPPRESS)
    return p


def _boolean(text: str) -> bool:
    """KServe's spelling of booleans on its command line (strtobool's)."""
    value = text.strip().lower()
    if value in ("y", "yes", "t", "true", "on", "1"):
        return True
    if value in ("n", "no", "f", "false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _refuse(log: object, exc: ModelLoadError) -> int:
    get_logger("serving.cli").error("no model loaded; refusing to start", reason=str(exc))
    print(f"\nERROR: {exc}\n\nRefusing to start: this server never serves a dummy model. Put a real model "
          "in the model directory, or pass --wait-for-model to stay unready until one appears.\n",
          file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = parser().parse_known_args(argv)
    # Process-wide switch, fine here: this process only serves. Drops the *_created series.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    configure(fmt=args.log_format, level=args.log_level, stdlib=True)
    log = get_logger("serving.cli").bind(model_name=args.model_name)
    problem = limits.check(limits.from_args(args))
    if problem:
        print(f"python -m serving: error: {problem}", file=sys.stderr)
        return 2
    if unknown:
        log.warning("ignoring arguments this server does not use", arguments=unknown)
    if args.workers > 1:
        return _supervise(args, argv if argv is not None else sys.argv[1:], log)

    from serving.app import build_app

    grpc_port = args.grpc_port if args.enable_grpc else 0
    lim = _fit_open_files(limits.from_args(args), log)
    try:
        app = build_app(model_name=args.model_name, model_dir=args.model_dir,
                        max_body_bytes=args.max_body_bytes, wait_for_model=args.wait_for_model,
                        predict_proba=args.predict_proba, nthread=args.nthread, limits=lim,
                        grpc_port=grpc_port, grpc_host=args.host, reuse_port=args.reuse_port)
    except ModelLoadError as exc:
        return _refuse(log, exc)
    log.info("serving", host=args.host, port=args.http_port, grpc_port=grpc_port or None,
             model_dir=str(args.model_dir),
             waiting_for_model=args.wait_for_model)
    # Everything allocated so far (xgboost, numpy, sklearn, the model: ~110k objects) lives as
    # long as the process. Freezing it keeps the cyclic GC from re-scanning it in every full
    # collection — each one took ~28 ms and set the p99 under load (measured: 47 ms -> see
    # bench/README.md).
    gc.freeze()
    try:
        limits.run_app(app, host=args.host, port=args.http_port, reuse_port=args.reuse_port)
    except OSError as exc:  # a port in use, an address not on this host
        log.error("cannot listen; stopping", reason=str(exc))
        return 1
    log.info("stopped")
    return 0



def _fit_open_files(lim: limits.Limits, log: Any) -> limits.Limits:
    """Raise the soft open-files limit to fit ``--max-connections`` (plus room for the model,
    logs and gRPC); if the hard limit is too low, lower the cap instead of failing on accept."""
    import dataclasses
    import resource

    room = 128
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = lim.max_connections + room
    if soft != resource.RLIM_INFINITY and soft < want:
        new_soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < want:
        cap = max(1, soft - room)
        log.warning("open-files limit too low for --max-connections; lowering the cap",
                    max_connections=lim.max_connections, open_files_limit=soft, new_cap=cap)
        return dataclasses.replace(lim, max_connections=cap)
    return lim

def _supervise(args: argparse.Namespace, argv: Sequence[str], log: object) -> int:
    from serving.loader import load_model

    slog = get_logger("serving.cli").bind(model_name=args.model_name)
    if not args.wait_for_model:
        try:
            load_model(args.model_dir)  # fail fast, once, before forking N copies of the same error
        except ModelLoadError as exc:
            return _refuse(log, exc)
    child = [sys.executable, "-m", "serving", *_without_workers(argv), "--workers", "1", "--reuse-port"]
    procs = [subprocess.Popen(child) for _ in range(args.workers)]
    slog.info("workers started", workers=args.workers, pids=[p.pid for p in procs], port=args.http_port)
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = 0
    while any(p.poll() is None for p in procs):
        for p in procs:
            code = p.poll()
            if code is not None and code != 0 and not stopping:
                slog.error("worker exited; stopping the others", pid=p.pid, exit_code=code)
                rc = code
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    return rc


def _without_workers(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        out.append(a)
    return out
