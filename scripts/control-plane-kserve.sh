#!/usr/bin/env bash
# Runs KServe's own manager (built by scripts/control-plane.sh) against a control plane started by
# scripts/control-plane-up.sh, and checks that it reconciles an InferenceService in RawDeployment
# ("Standard") mode and mutates its Pods through a webhook registered by URL.
#
#   bash scripts/control-plane-up.sh --smoke --kserve        (runs this after the smoke test)
#   KSW_CP_DIR=DIR KSW_CP_BIN=BIN bash scripts/control-plane-kserve.sh   (against a running one)
# The manager is stopped when this script ends, unless KSW_KSERVE_DETACH=1 (then its pid is
# KSERVE_MANAGER_PID in DIR/env and its log DIR/kserve-manager.log).
#
# KServe's CRDs, RBAC, webhook configurations, inferenceservice-config and ClusterServingRuntimes
# are read at run time from the kserve module in the Go module cache (KSERVE_MODULE_DIR in
# BIN/versions.env); nothing of KServe is copied into this repository.
#
# What the manager needs outside a cluster (cmd/manager/main.go of kserve v0.20.0):
#   KUBECONFIG            controller-runtime's config.GetConfig() reads it (no in-cluster env).
#                         Here: a token of the ServiceAccount kserve/kserve-controller-manager
#                         bound to KServe's own ClusterRole kserve-manager-role (config/rbac), so
#                         its RBAC is exercised, not an admin's.
#   POD_NAMESPACE=kserve  where it reads the ConfigMap inferenceservice-config (constants.
#                         KServeNamespace; default "kserve" anyway). It exits at start-up without
#                         that ConfigMap.
#   TMPDIR=DIR/kserve-tmp the webhook server has no cert-dir flag: controller-runtime reads
#                         $TMPDIR/k8s-webhook-server/serving-certs/tls.crt and tls.key.
#   -webhook-port=P       webhook HTTPS port; it listens on all interfaces (no host flag).
#   -metrics-addr=127.0.0.1:M, -health-probe-addr=127.0.0.1:H   defaults :8080/:8081 collide.
#   -leader-elect=false   (the default) one instance.
#   Webhooks (config/webhook/manifests.yaml), registered here by url https://127.0.0.1:P/<path>
#   with a caBundle of our own CA instead of a Service:
#     mutating   /mutate-serving-kserve-io-v1beta1-inferenceservice   InferenceService defaulter
#     mutating   /mutate-pods          storage-initializer / agent injection into ISVC Pods
#                                      (objectSelector: label serving.kserve.io/inferenceservice)
#     validating /validate-serving-kserve-io-v1beta1-inferenceservice
#     validating /validate-serving-kserve-io-v1alpha1-{trainedmodel,inferencegraph,
#                                      servingruntime,clusterservingruntime}
#   The CRDs (config/crd/full) are served as single versions, so no conversion webhook is needed.
#   Without Knative, Istio, KEDA or OpenTelemetry CRDs it logs that it won't watch those kinds and
#   carries on; ingress creation is switched off in the ConfigMap (no ingress controller here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${KSW_CP_DIR:?KSW_CP_DIR: the directory of a running scripts/control-plane-up.sh}"
BIN="${KSW_CP_BIN:-$(grep '^KSW_CP_BIN=' "$DIR/env" | cut -d= -f2-)}"
export KUBECONFIG="$DIR/admin.kubeconfig"
NS=kserve
MODE="${KSW_KSERVE_MODE:-RawDeployment}"

log() { printf '[control-plane-kserve] %s\n' "$*" >&2; }
die() { printf '[control-plane-kserve] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
k() { "$BIN/kubectl" "$@"; }
wait_for() { # wait_for SECS WHAT CMD...
  local secs="$1" what="$2" t; shift 2; t="$(now)"
  until "$@" >/dev/null 2>&1; do
    [ "$(since "$t" | cut -d. -f1)" -lt "$secs" ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
}

[ -x "$BIN/kserve-manager" ] || die "$BIN/kserve-manager is missing: run 'bash scripts/control-plane.sh kserve'"
# shellcheck disable=SC1091
. "$BIN/versions.env"
M="$KSERVE_MODULE_DIR"
[ -d "$M/config/crd/full" ] || die "KServe module not found at $M (run 'bash scripts/control-plane.sh kserve')"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
"$PY" -c 'import yaml' 2>/dev/null || die "PyYAML is needed (make setup)"
manifests() { (cd "$ROOT" && "$PY" -m sandbox.realcp.kserve_manifests "$@"); }

T0="$(now)"
read -r HOOK_PORT METRICS_PORT PROBE_PORT <<<"$(python3 -c '
import socket; s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1", 0)) for x in s]; print(*[x.getsockname()[1] for x in s])')"

# --- CRDs, namespace, RBAC, ConfigMap, runtimes -------------------------------------------------
k apply --server-side -k "$M/config/crd/full" >&2
# (not `kubectl wait --for condition=established`: it errors out on a CRD that has no
# status.conditions yet instead of waiting)
established() { [ "$(k get crd "$1" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" = True ]; }
for crd in inferenceservices servingruntimes clusterservingruntimes trainedmodels inferencegraphs; do
  wait_for 60 "CRD $crd established" established "$crd.serving.kserve.io"
done
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >&2
manifests rbac "$M" "$NS" | k apply -f - >&2
manifests configmap "$M" "$NS" "$MODE" | k apply --server-side -f - >&2
k apply --server-side -k "$M/config/runtimes" >&2

# --- webhook serving certificate (own CA) and the webhook configurations by URL ---------------
W="$DIR/kserve-tmp/k8s-webhook-server/serving-certs"; mkdir -p "$W"
(
  cd "$W"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout ca.key -out ca.crt -subj "/CN=kserve-webhook-ca" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout tls.key -out tls.csr -subj "/CN=kserve-webhook-server" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > tls.ext
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile tls.ext \
    -out tls.crt 2>/dev/null
)

# --- the manager, as its own ServiceAccount ----------------------------------------------------
TOKEN="$(k -n "$NS" create token kserve-controller-manager --duration=24h)"
sed -e "s/^    token: .*/    token: $TOKEN/" -e "s/name: admin$/name: kserve/" -e "s/user: admin,/user: kserve,/" \
  "$DIR/admin.kubeconfig" > "$DIR/kserve.kubeconfig"
chmod 600 "$DIR/kserve.kubeconfig"
KUBECONFIG="$DIR/kserve.kubeconfig" POD_NAMESPACE="$NS" TMPDIR="$DIR/kserve-tmp" \
  "$BIN/kserve-manager" -webhook-port="$HOOK_PORT" -metrics-addr="127.0.0.1:$METRICS_PORT" \
  -health-probe-addr="127.0.0.1:$PROBE_PORT" -leader-elect=false > "$DIR/kserve-manager.log" 2>&1 &
MGR=$!
echo "KSERVE_MANAGER_PID=$MGR" >> "$DIR/env"
if [ "${KSW_KSERVE_DETACH:-0}" != 1 ]; then
  trap 'kill $MGR 2>/dev/null || true; wait $MGR 2>/dev/null || true' EXIT
else
  trap '[ $? = 0 ] || kill $MGR 2>/dev/null || true' EXIT  # left running only when all went well
fi
healthy() { kill -0 "$MGR" 2>/dev/null || { tail -n 40 "$DIR/kserve-manager.log" >&2; die "kserve-manager exited"; }
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PROBE_PORT/readyz"; }
t="$(now)"; until healthy 2>/dev/null; do
  kill -0 "$MGR" 2>/dev/null || { tail -n 40 "$DIR/kserve-manager.log" >&2; die "kserve-manager exited"; }
  [ "$(since "$t" | cut -d. -f1)" -lt 60 ] || { tail -n 40 "$DIR/kserve-manager.log" >&2; die "kserve-manager not ready after 60s"; }
  sleep 0.3
done
log "kserve-manager ready in $(since "$t")s (webhooks :$HOOK_PORT, probes :$PROBE_PORT)"
manifests webhooks "$M" "https://127.0.0.1:$HOOK_PORT" "$W/ca.crt" | k apply -f - >&2

# --- an InferenceService -----------------------------------------------------------------------
k create namespace models --dry-run=client -o yaml | k apply -f - >&2
k apply -f - >&2 <<'EOF'
apiVersion: v1
kind: Secret
metadata:
  name: s3creds
  namespace: models
  annotations:
    serving.kserve.io/s3-endpoint: minio.models.svc:9000
    serving.kserve.io/s3-usehttps: "0"
stringData:
  AWS_ACCESS_KEY_ID: minio
  AWS_SECRET_ACCESS_KEY: minio123
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: models-sa
  namespace: models
secrets:
- name: s3creds
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  namespace: models
spec:
  predictor:
    serviceAccountName: models-sa
    model:
      modelFormat:
        name: sklearn
      storageUri: s3://models/iris
EOF
t="$(now)"
wait_for 60 "the predictor Deployment" k -n models get deployment iris-predictor
log "InferenceService -> Deployment iris-predictor in $(since "$t")s"
wait_for 60 "a predictor Pod" sh -c "'$BIN/kubectl' -n models get pods -l serving.kserve.io/inferenceservice=iris -o name | grep -q pod/"
POD="$(k -n models get pods -l serving.kserve.io/inferenceservice=iris -o jsonpath='{.items[0].metadata.name}')"
INIT="$(k -n models get pod "$POD" -o jsonpath='{.spec.initContainers[*].name}')"
ENVS="$(k -n models get pod "$POD" -o jsonpath='{.spec.initContainers[0].env[*].name}')"
k -n models get isvc,deploy,rs,svc,pods -o wide >&2
log "Pod $POD init containers: [$INIT]; storage-initializer env: [$ENVS]"
log "runtime chosen by KServe: image $(k -n models get deploy iris-predictor -o jsonpath='{.spec.template.spec.containers[0].image}'); ISVC conditions: $(k -n models get isvc iris -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}')"
case " $INIT " in *" storage-initializer "*) ;; *) die "the pod webhook did not inject storage-initializer";; esac
log "KServe manager works against the real control plane ($(since "$T0")s); log: $DIR/kserve-manager.log"
