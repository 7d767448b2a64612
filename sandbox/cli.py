"""``kserve-warden sandbox``: run the stand-in cluster until interrupted.

Starts a :class:`~sandbox.Sandbox` (API, S3 behind the mesh, DNS, controllers, the seed's
starting world), checks that the API answers a real client request (``GET /version`` with
kubernetes_asyncio), and only then writes the kubeconfig to ``--kubeconfig`` (so a script
waiting for the file can use it at once) and the daemon's settings to ``--warden-config``.
It prints the endpoints on stdout, then runs until SIGINT or SIGTERM and shuts everything
down cleanly (exit 0). The files written stay behind; they point at ports that are closed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from kubernetes_asyncio.client import VersionApi

from sandbox import Sandbox

EXIT_OK = 0
EXIT_FAILED = 1


def _endpoints(sb: Sandbox, kubeconfig: Path, warden: Path | None, sidecar: str) -> str:
    dns_host, dns_port = sb.dns_address
    lines = [
        "kserve-warden sandbox is up",
        f"  Kubernetes API   {sb.api_url} ({sb.control_plane} control plane)",
        f"  kubeconfig       {kubeconfig}",
        f"  S3 (moto)        {sb.s3_url}",
        f"  DNS (CoreDNS)    {dns_host}:{dns_port} (udp+tcp)",
        f"  daemon sidecar   {sidecar} (egress as cluster.local/ns/kserve-warden/sa/kserve-warden)",
    ]
    if warden is not None:
        lines.append(f"  warden settings  {warden}")
        lines.append(f"  run the daemon:  kserve-warden run --config {warden} --kubeconfig {kubeconfig}")
    lines.append(f"  try:             kubectl --kubeconfig {kubeconfig} get inferenceservices -A")
    lines.append("Ctrl-C (SIGINT) or SIGTERM stops it.")
    return "\n".join(lines)


async def _serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sb = Sandbox(host=args.host, control_plane=getattr(args, "control_plane", "embedded"))
    try:
        await sb.start()
        async with sb.new_api_client() as api:
            await VersionApi(api).get_code()  # the API answers a real client: now write the files
        kubeconfig = Path(args.kubeconfig) if args.kubeconfig else sb.kubeconfig_path
        if args.kubeconfig:
            sb.write_kubeconfig(kubeconfig, namespace="user-example-com")
        warden = Path(args.warden_config) if args.warden_config else None
        if warden is not None:
            sb.write_warden_config(warden)
        print(_endpoints(sb, kubeconfig, warden, await sb.daemon_sidecar()), flush=True)
        await stop.wait()
        print("stopping the sandbox...", file=sys.stderr, flush=True)
        return EXIT_OK
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sb.stop()


def sandbox_command(args: argparse.Namespace) -> int:
    from serving import logs

    logs.configure(fmt=getattr(args, "log_format", "console"), level=getattr(args, "log_level", "warning"))
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return EXIT_OK
    except Exception as exc:  # a port in use, a missing package: one clear line, no traceback
        print(f"kserve-warden sandbox: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
