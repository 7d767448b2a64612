"""Knative Serving's install manifests, read from its Go modules, for its commands on loopback.

Used by :mod:`sandbox.realcp.knative`; ``python -m sandbox.realcp.knative_manifests`` prints the
same documents, to read or to ``kubectl apply`` by hand. Nothing of Knative is copied into the
repository: every document comes from the module cache at run time, where
``scripts/control-plane.sh`` (component ``knative``) links the three modules a release's
``serving-crds.yaml`` and ``serving-core.yaml`` are made from (:class:`Modules`).

A release builds those two files from ``knative.dev/serving``'s ``config/core`` with ``ko``.
Several of its files are symlinks into ``knative.dev/networking`` (the KIngress, Certificate,
ServerlessService and ClusterDomainClaim CRDs, ``config-network``) and ``knative.dev/caching``
(the Image CRD); Go module zips drop symlinks, so those are read from their own modules here,
at the versions ``knative.dev/serving``'s go.mod requires.

    knative_manifests.py crds       COMPONENT_DIR
        every CustomResourceDefinition: serving's config/core/300-resources, networking's and
        caching's config/.
    knative_manifests.py core       COMPONENT_DIR
        the knative-serving Namespace, the ServiceAccounts, ClusterRoles, Roles and bindings
        (config/core/200-*), the config-* ConfigMaps (config/core/configmaps, networking's
        config-network) with ``queue-sidecar-image`` named (see :func:`configmaps`).
    knative_manifests.py webhooks   COMPONENT_DIR PORT
        config/core/webhooks: the three webhook configurations with their Service's port set to
        PORT (see :func:`webhooks`), and the empty ``webhook-certs`` Secret the webhook fills.
Writes a YAML stream to stdout, for ``kubectl apply -f -``.

Left out, with the reason: ``config/core/deployments`` (the commands run as processes, see
:mod:`sandbox.realcp.knative`); ``300-knativecertificate.yaml`` (a KCertificate of class
cert-manager for system-internal TLS: only net-certmanager reconciles it, and that TLS is off
by default); ``999-cache.yaml`` (a caching ``Image`` for queue-proxy whose ``ko://`` reference
only ko resolves, and which no controller here reads); ``config/post-install`` (jobs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "knative-serving"
WEBHOOK_SERVICE = "webhook"
QUEUE_SIDECAR_IMAGE = "knative.dev/serving/cmd/queue"
"""``config-deployment``'s ``queue-sidecar-image``. The module ships ``ko://knative.dev/serving/
cmd/queue``, which only ko turns into an image (a release names ``gcr.io/knative-releases/...``
by digest); this names the same command as an image reference, tagged with the module's
version by :func:`configmaps`. The queue-proxy binary itself is built as ``queue-proxy``."""


@dataclass(frozen=True, kw_only=True)
class Modules:
    """The module directories of one Knative Serving build (``<cache>/knative-serving-<v>``)."""

    serving: Path
    networking: Path
    caching: Path

    @classmethod
    def of(cls, component_dir: Path) -> Modules:
        """The links ``scripts/control-plane.sh`` leaves in ``component_dir``."""
        mods = cls(serving=component_dir / "module", networking=component_dir / "networking-module",
                   caching=component_dir / "caching-module")
        for name, path in (("knative.dev/serving", mods.serving / "config" / "core"),
                           ("knative.dev/networking", mods.networking / "config"),
                           ("knative.dev/caching", mods.caching / "config")):
            if not path.is_dir():
                raise FileNotFoundError(f"{name}'s config/ is not at {path}: run "
                                        "`make control-plane`")
        return mods

    @property
    def version(self) -> str:
        """The serving module's version, from its directory name (``serving@v0.48.1``)."""
        return self.serving.resolve().name.rpartition("@")[2]


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _load_all(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [d for p in sorted(paths) for d in _load(p)]


def crds(mods: Modules) -> list[dict[str, Any]]:
    docs = _load_all([*(mods.serving / "config" / "core" / "300-resources").glob("*.yaml"),
                      *(mods.networking / "config").glob("*.yaml"),
                      *(mods.caching / "config").glob("*.yaml")])
    return [d for d in docs if d["kind"] == "CustomResourceDefinition"]


def namespace(mods: Modules) -> list[dict[str, Any]]:
    return _load(mods.serving / "config" / "core" / "100-namespace.yaml")


def rbac(mods: Modules) -> list[dict[str, Any]]:
    """ServiceAccounts ``controller`` (controller, webhook, autoscaler) and ``activator``, the
    aggregated ``knative-serving-admin`` ClusterRole and the roles it aggregates, the bindings."""
    core = mods.serving / "config" / "core"
    return _load_all([core / "200-serviceaccount.yaml", *(core / "200-roles").glob("*.yaml")])


def configmaps(mods: Modules) -> list[dict[str, Any]]:
    """The ``config-*`` ConfigMaps as shipped (their ``_example`` keys are documentation, which
    Knative checks against the ``knative.dev/example-checksum`` annotation: kept as they are),
    with ``config-deployment``'s ``queue-sidecar-image`` named (:data:`QUEUE_SIDECAR_IMAGE`)."""
    docs = _load_all([*(mods.serving / "config" / "core" / "configmaps").glob("*.yaml"),
                      *(mods.networking / "config").glob("*.yaml")])
    cms = [d for d in docs if d["kind"] == "ConfigMap"]
    for cm in cms:
        if cm["metadata"]["name"] == "config-deployment":
            cm["data"]["queue-sidecar-image"] = f"{QUEUE_SIDECAR_IMAGE}:{mods.version}"
    return cms


def core(mods: Modules) -> list[dict[str, Any]]:
    return namespace(mods) + rbac(mods) + configmaps(mods)


def webhooks_unbound(mods: Modules) -> list[dict[str, Any]]:
    """The webhook configurations as shipped (for their kinds and names)."""
    docs = _load_all((mods.serving / "config" / "core" / "webhooks").glob("*.yaml"))
    return [d for d in docs if d["kind"] != "Secret"]


def webhooks(mods: Modules, port: int | str) -> list[dict[str, Any]]:
    """``config/core/webhooks`` with each ``clientConfig.service`` given ``port``.

    The Service reference stays: Knative's webhook reconciles these configurations itself (it
    fills in the rules, the path and the ``caBundle`` of the certificate it makes for
    ``webhook.knative-serving.svc`` and keeps in ``webhook-certs``), and refuses one without a
    Service reference. It keeps the port it finds; the apiserver dials ``<Service>:<port>``."""
    docs = _load_all((mods.serving / "config" / "core" / "webhooks").glob("*.yaml"))
    for d in docs:
        for w in d.get("webhooks") or []:
            w["clientConfig"]["service"]["port"] = int(port)
    return docs


def main(argv: list[str]) -> int:
    commands: dict[str, Callable[..., list[dict[str, Any]]]] = {
        "crds": crds, "core": core, "webhooks": webhooks}
    if len(argv) < 2 or argv[0] not in commands:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        mods = Modules.of(Path(argv[1]))
    except FileNotFoundError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    docs = commands[argv[0]](mods, *argv[2:])
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
