#!/usr/bin/env bash
# Installs the non-Python tools the tests run for real, into the system or .cache/:
#   dnsmasq        (Debian dnsmasq-base)  a real DNS server for the DNS probe test
#   promtool       (Debian prometheus)    check/test the alert rules and our /metrics
#   kubectl        (apt, if missing)      kubectl kustomize for config/deploy
# promtool is taken out of the .deb with dpkg-deb -x rather than installed: a full
# `apt-get install prometheus` drags in ~330 MB of web assets and a service.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.cache/tools
mkdir -p "$TOOLS/bin"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_update() { if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi; }

if ! command -v dnsmasq >/dev/null 2>&1 && [ ! -x /usr/sbin/dnsmasq ]; then
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null
fi

# kubectl (for `kubectl kustomize` of config/deploy): not in Debian's own archive in a
# recent enough version; taken from the system's apt sources when one provides it.
if ! command -v kubectl >/dev/null 2>&1; then
  apt_update
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubectl >/dev/null 2>&1; then
    echo "kubectl >= 1.27 is needed by the manifest tests (kubectl kustomize); install it from" >&2
    echo "the Kubernetes apt repository (pkgs.k8s.io) and re-run" >&2
    exit 1
  fi
fi

if [ ! -x "$TOOLS/bin/promtool" ]; then
  if command -v promtool >/dev/null 2>&1; then
    ln -sf "$(command -v promtool)" "$TOOLS/bin/promtool"
  else
    apt_update
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    cp "$tmp/x/usr/bin/promtool" "$TOOLS/bin/promtool"
    rm -rf "$tmp"
  fi
fi
"$TOOLS/bin/promtool" --version 2>&1 | head -1
