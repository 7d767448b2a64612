#!/usr/bin/env bash
# Starts the real control plane built by scripts/control-plane.sh on loopback and proves it works.
#
#   bash scripts/control-plane-up.sh [--smoke] [--kserve] [--dir DIR] [--keep]
#
# Starts etcd, kube-apiserver and kube-controller-manager on free 127.0.0.1 ports, with all state
# (certificates, keys, etcd data, logs, kubeconfigs) in DIR (default: a new temp dir), waits for
# /readyz, and prints the admin kubeconfig path as the last line of stdout (everything else goes to
# stderr). Then it stays in the foreground until SIGINT/SIGTERM and stops what it started.
#   --smoke   instead of waiting: create a Deployment and wait for the controller manager's
#             ReplicaSet and Pod, create a ServiceAccount and a token for it (TokenRequest), check
#             RBAC denies that token, then stop. Exit status 0 = the control plane works.
#   --kserve  also install KServe's CRDs and inferenceservice-config from the module cache and
#             run KServe's manager against the apiserver (see scripts/control-plane-kserve.sh).
#   --keep    keep DIR afterwards (logs: DIR/*.log).
# Binaries: $KSW_CP_BIN if set, else the bin dir `bash scripts/control-plane.sh` prints (a warm
# run of it takes about a second; a cold one builds everything).
#
# ---------------------------------------------------------------------------------------------
# Every flag, and why (a Python fixture reproduces exactly this):
#
# PKI (openssl; nothing is fetched):
#   ca.crt/ca.key         a self-signed CA (EC P-256, 1 day), trusted by kubeconfigs and by the
#                         apiserver for client certificates (--client-ca-file).
#   front-proxy-client.crt/.key   client cert (CN front-proxy-client) the apiserver presents to
#                         aggregated API servers; see --requestheader-* below.
#   apiserver.crt/.key    serving cert signed by the CA, SANs 127.0.0.1, localhost, 10.0.0.1
#                         (first IP of the service range: the `kubernetes` Service) and
#                         kubernetes.default.svc[.cluster.local]; clients verify it with ca.crt.
#   sa.key/sa.pub         RSA 2048 key pair for service-account tokens: the apiserver signs
#                         TokenRequest tokens with sa.key and verifies with sa.pub; the controller
#                         manager signs legacy Secret tokens with sa.key.
#   tokens.csv            static bearer tokens (--token-auth-file): `admin` in group
#                         system:masters, and `system:kube-controller-manager`, the user the
#                         bootstrap RBAC (ClusterRoleBinding system:kube-controller-manager and the
#                         kube-system leader-locking Role) already grants what the KCM needs.
#
# etcd:
#   --name ksw --data-dir DIR/etcd
#   --listen-client-urls/--advertise-client-urls http://127.0.0.1:P   plain HTTP on loopback only
#   --listen-peer-urls/--initial-advertise-peer-urls http://127.0.0.1:Q and
#   --initial-cluster ksw=http://127.0.0.1:Q   a one-member cluster on a free peer port (the
#                         default 2380 may be taken by another run)
#   --listen-metrics-urls '' is not accepted, so metrics stay on the client port (default)
#   --unsafe-no-fsync     throwaway data: skip fsync, as envtest does (much faster on a busy disk)
#   --log-level warn
#
# kube-apiserver:
#   --etcd-servers=http://127.0.0.1:P
#   --bind-address=127.0.0.1 --secure-port=A     HTTPS on loopback only (there is no insecure port)
#   --advertise-address=127.0.0.1                otherwise it picks the host's first interface
#   --endpoint-reconciler-type=none              the default (lease) reconciler writes the
#                         advertise address into the `kubernetes` Endpoints, and a loopback address
#                         is invalid there; nothing here needs that Service to have endpoints
#   --tls-cert-file/--tls-private-key-file       apiserver.crt/.key (stable CA for clients, unlike
#                         the self-signed one --cert-dir would make)
#   --client-ca-file=ca.crt                      x509 client-cert authentication (e.g. the KServe
#                         webhook's caller identity, kubectl with a cert); also what the
#                         extension-apiserver-authentication ConfigMap publishes
#   --requestheader-client-ca-file=ca.crt --requestheader-allowed-names=front-proxy-client
#   --requestheader-{username,group}-headers=X-Remote-{User,Group}
#   --requestheader-extra-headers-prefix=X-Remote-Extra-
#   --proxy-client-cert-file/--proxy-client-key-file=front-proxy-client.crt/.key
#                         the front-proxy (aggregation) settings kubeadm uses. Without them the
#                         extension-apiserver-authentication ConfigMap lacks the requestheader CA
#                         and every delegating server (the KCM's /healthz, KServe's webhooks if
#                         they used delegated authn) logs "missing content for CA bundle" forever
#   --token-auth-file=tokens.csv                 the admin and KCM bearer tokens above
#   --authorization-mode=Node,RBAC               as kubeadm; RBAC is what matters here
#   --service-account-issuer=https://kubernetes.default.svc.cluster.local
#   --service-account-key-file=sa.pub            verify service-account tokens
#   --service-account-signing-key-file=sa.key    sign TokenRequest tokens (required with the issuer)
#   --service-cluster-ip-range=10.0.0.0/24       Services get ClusterIPs from here
#   --allow-privileged=true                      KServe/Istio-like pod specs may ask for it
#   (admission plugins: the default set, which includes ServiceAccount, NamespaceLifecycle,
#    MutatingAdmissionWebhook, ValidatingAdmissionWebhook, ResourceQuota, ...)
#   --profiling=false --v=1
#
# kube-controller-manager:
#   --kubeconfig=kcm.kubeconfig                  token of system:kube-controller-manager
#   --authentication-kubeconfig/--authorization-kubeconfig=kcm.kubeconfig   so its own /healthz
#                         server can delegate authn/authz instead of warning and failing requests
#   --bind-address=127.0.0.1 --secure-port=K     its health endpoint on a free loopback port
#                         (default 10257 may be taken); self-signed serving cert in DIR/kcm-certs
#   --cert-dir=DIR/kcm-certs
#   --service-account-private-key-file=sa.key    sign legacy (Secret) SA tokens
#   --root-ca-file=ca.crt                        put into the kube-root-ca.crt ConfigMap of every
#                         namespace (the projected SA volume of every Pod refers to it)
#   --use-service-account-credentials=true       each controller runs as its own ServiceAccount in
#                         kube-system (as in real clusters), not as the KCM user
#   --controllers=deployment,replicaset,garbagecollector,namespace,serviceaccount,
#                 serviceaccount-token,root-ca-cert-publisher,clusterrole-aggregation,clusterrole-aggregation
#                         Deployments -> ReplicaSets -> Pods, ownerReference GC (cascading
#                         deletes), namespace deletion, the `default` ServiceAccount of each
#                         namespace (the ServiceAccount admission plugin rejects Pods until it
#                         exists), legacy SA token Secrets, kube-root-ca.crt, and the rules of
#                         the aggregated ClusterRoles admin/edit/view (empty without it)
#   --leader-elect=false                         one instance; no lease wait on restart
#   --v=1
# ---------------------------------------------------------------------------------------------
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE=0; KSERVE=0; KEEP=0; DIR=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --kserve) KSERVE=1 ;;
    --keep) KEEP=1 ;;
    --dir) DIR="$2"; shift ;;
    *) echo "usage: $0 [--smoke] [--kserve] [--dir DIR] [--keep]" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[control-plane-up] %s\n' "$*" >&2; }
die() { printf '[control-plane-up] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

BIN="${KSW_CP_BIN:-}"
if [ -z "$BIN" ]; then
  BIN="$(bash "$ROOT/scripts/control-plane.sh" kubernetes etcd $([ "$KSERVE" = 1 ] && echo kserve) | tail -n1)"
fi
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make control-plane'"
done
command -v openssl >/dev/null || die "openssl is needed to make the certificates"

if [ -z "$DIR" ]; then DIR="$(mktemp -d "${TMPDIR:-/tmp}/ksw-cp.XXXXXX")"; fi
mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"
PIDS=()
cleanup() {
  local rc=$? i
  # Stop in reverse start order: clients before the apiserver, the apiserver before etcd (an
  # apiserver whose etcd is gone spends its shutdown timing out on lease updates).
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
    while kill -0 "${PIDS[$i]}" 2>/dev/null; do sleep 0.1; done  # not our child (kserve-manager)
  done
  if [ "$KEEP" = 1 ] || { [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ]; }; then log "state and logs kept in $DIR"; else rm -rf "$DIR"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports N: N distinct free loopback TCP ports.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r ETCD_PORT PEER_PORT API_PORT KCM_PORT <<<"$(free_ports 4)"

# --- PKI ---------------------------------------------------------------------------------------
T0="$(now)"
PKI="$DIR/pki"; mkdir -p "$PKI"
(
  cd "$PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout ca.key -out ca.crt -subj "/CN=ksw-control-plane-ca" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' > apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout front-proxy-client.key -out front-proxy-client.csr -subj "/CN=front-proxy-client" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in front-proxy-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile client.ext -out front-proxy-client.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)
ADMIN_TOKEN="$(openssl rand -hex 16)"; KCM_TOKEN="$(openssl rand -hex 16)"
printf '%s,admin,admin,"system:masters"\n%s,system:kube-controller-manager,system:kube-controller-manager\n' \
  "$ADMIN_TOKEN" "$KCM_TOKEN" > "$PKI/tokens.csv"
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

kubeconfig() { # kubeconfig FILE USER TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ksw
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: ksw
  context: {cluster: ksw, user: $2, namespace: default}
current-context: ksw
EOF
  chmod 600 "$1"
}
kubeconfig "$DIR/admin.kubeconfig" admin "$ADMIN_TOKEN"
kubeconfig "$DIR/kcm.kubeconfig" system:kube-controller-manager "$KCM_TOKEN"

# --- etcd --------------------------------------------------------------------------------------
"$BIN/etcd" --name ksw --data-dir "$DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "ksw=http://127.0.0.1:$PEER_PORT" \
  --unsafe-no-fsync --log-level warn > "$DIR/etcd.log" 2>&1 &
PIDS+=("$!")

# --- kube-apiserver ----------------------------------------------------------------------------
"$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --requestheader-client-ca-file="$PKI/ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --token-auth-file="$PKI/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true \
  --profiling=false --v=1 > "$DIR/kube-apiserver.log" 2>&1 &
PIDS+=("$!")

# wait_for SECS WHAT CMD...: run CMD until it succeeds; fail after SECS seconds.
wait_for() {
  local secs="$1" what="$2" t; shift 2; t="$(now)"
  until "$@" >/dev/null 2>&1; do
    [ "$(since "$t" | cut -d. -f1)" -lt "$secs" ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}
ready() { # ready URL: the admin gets 200 from it
  curl -fsS -o /dev/null --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$1" 2>/dev/null
}
until ready "https://127.0.0.1:$API_PORT/readyz"; do
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$DIR"/*.log >&2; die "a process exited (logs above)"; }
  done
  [ "$(since "$T0" | cut -d. -f1)" -lt 120 ] || { tail -n 30 "$DIR/kube-apiserver.log" >&2; die "apiserver not ready after 120s"; }
  sleep 0.2
done
API_READY="$(since "$T0")"

# --- kube-controller-manager -------------------------------------------------------------------
"$BIN/kube-controller-manager" \
  --kubeconfig="$DIR/kcm.kubeconfig" \
  --authentication-kubeconfig="$DIR/kcm.kubeconfig" --authorization-kubeconfig="$DIR/kcm.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$DIR/kcm-certs" \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --use-service-account-credentials=true \
  --controllers=deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher,clusterrole-aggregation \
  --leader-elect=false \
  --v=1 > "$DIR/kube-controller-manager.log" 2>&1 &
PIDS+=("$!")
until curl -fsS -o /dev/null --max-time 2 -k "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null; do
  kill -0 "${PIDS[2]}" 2>/dev/null || { tail -n 30 "$DIR/kube-controller-manager.log" >&2; die "kube-controller-manager exited"; }
  [ "$(since "$T0" | cut -d. -f1)" -lt 120 ] || die "kube-controller-manager not healthy after 120s"
  sleep 0.2
done
log "apiserver ready in ${API_READY}s, controller manager healthy in $(since "$T0")s (etcd :$ETCD_PORT, apiserver :$API_PORT, kcm :$KCM_PORT, dir $DIR)"
printf 'KSW_CP_DIR=%s\nKSW_CP_BIN=%s\nAPI_PORT=%s\nETCD_PORT=%s\nKCM_PORT=%s\nADMIN_TOKEN=%s\n' \
  "$DIR" "$BIN" "$API_PORT" "$ETCD_PORT" "$KCM_PORT" "$ADMIN_TOKEN" > "$DIR/env"

export KUBECONFIG="$DIR/admin.kubeconfig"
k() { "$BIN/kubectl" "$@"; }

if [ "$SMOKE" = 1 ]; then
  T1="$(now)"
  k version -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("server", d["serverVersion"]["gitVersion"], "client", d["clientVersion"]["gitVersion"])' >&2
  k create namespace smoke >&2
  wait_for 30 "the default ServiceAccount" k -n smoke get serviceaccount default
  log "namespace smoke has its default ServiceAccount after $(since "$T1")s"
  k -n smoke create deployment web --image=registry.invalid/web:1 --replicas=2 >&2
  until [ "$(k -n smoke get pods -l app=web -o name 2>/dev/null | wc -l)" = 2 ]; do
    [ "$(since "$T1" | cut -d. -f1)" -lt 60 ] || { k -n smoke get all >&2; die "no Pods from the Deployment after 60s"; }
    sleep 0.2
  done
  log "Deployment -> ReplicaSet -> 2 Pods (Pending: no scheduler, no kubelet) in $(since "$T1")s:"
  k -n smoke get deploy,rs,pods -o wide >&2
  k -n smoke create serviceaccount robot >&2
  SA_TOKEN="$(k -n smoke create token robot --duration=10m)"
  [ -n "$SA_TOKEN" ] || die "TokenRequest returned no token"
  WHO="$(k --token="$SA_TOKEN" auth whoami -o jsonpath='{.status.userInfo.username}')"
  [ "$WHO" = "system:serviceaccount:smoke:robot" ] || die "token authenticates as '$WHO'"
  if k --token="$SA_TOKEN" -n smoke get pods >/dev/null 2>&1; then die "RBAC let an unbound ServiceAccount list pods"; fi
  k -n smoke create rolebinding robot-view --clusterrole=view --serviceaccount=smoke:robot >&2
  wait_for 30 "RBAC to allow the bound ServiceAccount" k --token="$SA_TOKEN" -n smoke get pods
  log "TokenRequest token authenticates as $WHO; RBAC: forbidden until bound to 'view', allowed after"
  k get configmap -n smoke kube-root-ca.crt -o name >&2
  k delete namespace smoke --wait=true --timeout=60s >&2
  log "namespace deleted (namespace controller + garbage collector) after $(since "$T1")s"
fi

if [ "$KSERVE" = 1 ]; then
  # Without --smoke the manager keeps running with the control plane (and is stopped with it).
  KSW_KSERVE_DETACH="$((1 - SMOKE))" KSW_CP_DIR="$DIR" KSW_CP_BIN="$BIN" \
    bash "$ROOT/scripts/control-plane-kserve.sh" >&2
  if [ "$SMOKE" = 0 ]; then PIDS+=("$(grep '^KSERVE_MANAGER_PID=' "$DIR/env" | cut -d= -f2)"); fi
fi

if [ "$SMOKE" = 1 ]; then log "smoke test passed"; [ "$KEEP" = 0 ] || echo "$DIR/admin.kubeconfig"; exit 0; fi
echo "$DIR/admin.kubeconfig"
log "running; Ctrl-C or SIGTERM stops it"
while :; do
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "process $pid exited (logs in $DIR)"; done
  sleep 1
done
