#!/usr/bin/env bash
# Builds the Kubernetes control plane the admission tests run against —
# kube-apiserver and etcd — from the Go module proxy at pinned versions, into a
# cache outside the repository keyed by those versions, so only the first run
# pays (~11 CPU-minutes with a cold Go build cache; see docs/kubetest.md). Prints the
# directory holding both binaries on stdout (the harness reads it from
# AIRLOCK_KUBE_ASSETS); everything else goes to stderr.
#
# Why not `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.37.2`: kubernetes'
# go.mod requires its staging modules (k8s.io/api, k8s.io/apiserver, …) at
# v0.0.0 with `replace => ./staging/...` lines, and go install refuses modules
# with replace directives. So we build from a throwaway module that requires
# k8s.io/kubernetes and replaces each staging module it requires by the
# published tag of the same release (v1.X.Y ↔ v0.X.Y). etcd's modules have
# relative replace lines too and are built the same way. Debian's etcd-server
# (3.4.x in bookworm) is older than kube-apiserver 1.37 accepts (3.5.24+), so
# etcd is built as well, at the version kubernetes names in
# build/dependencies.yaml.
set -euo pipefail

KUBE_VERSION="${AIRLOCK_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${AIRLOCK_ETCD_VERSION:-v3.7.0}"

CACHE="${AIRLOCK_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-tools}"
OUT="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"

log() { echo "kube.sh: $*" >&2; }

if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/etcd" ]; then
  log "cached: $OUT (kube-apiserver $KUBE_VERSION, etcd $ETCD_VERSION)"
  echo "$OUT"
  exit 0
fi

export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/airlock-kube-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# minor version of a vMAJOR.MINOR.PATCH tag, e.g. v1.37.2 -> 37
IFS=. read -r kmajor kminor kpatch <<<"${KUBE_VERSION#v}"
STAGING_VERSION="v0.$kminor.$kpatch"

build_apiserver() {
  local start=$SECONDS dir="$WORK/kube"
  mkdir -p "$dir"
  log "downloading k8s.io/kubernetes@$KUBE_VERSION"
  local kmod
  kmod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$kmod" ] || { log "could not download k8s.io/kubernetes@$KUBE_VERSION; check the Go module proxy"; exit 1; }
  local goline
  goline="$(grep -m1 '^go ' "$kmod")"
  {
    echo "module airlock.invalid/kubebuild"
    echo
    echo "$goline"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    # every staging module kubernetes requires at v0.0.0, by its published tag
    awk '/^require \($/ {r=1; next} r && /^\)$/ {r=0} r && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$kmod" |
      sort -u | while read -r m; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >"$dir/go.mod"
  log "building kube-apiserver $KUBE_VERSION (staging modules at $STAGING_VERSION)"
  local pkgv=k8s.io/component-base/version
  (cd "$dir" && go build -trimpath -o "$OUT/kube-apiserver.tmp" \
    -ldflags "-s -w -X $pkgv.gitVersion=$KUBE_VERSION -X $pkgv.gitMajor=$kmajor -X $pkgv.gitMinor=$kminor -X $pkgv.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver) >&2
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  log "kube-apiserver built in $((SECONDS - start))s"
}

build_etcd() {
  local start=$SECONDS dir="$WORK/etcd"
  mkdir -p "$dir"
  local goline
  goline="$(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/go \1/')"
  printf 'module airlock.invalid/etcdbuild\n\n%s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$goline" "$ETCD_VERSION" >"$dir/go.mod"
  log "building etcd $ETCD_VERSION"
  (cd "$dir" && go build -trimpath -o "$OUT/etcd.tmp" \
    -ldflags "-s -w" go.etcd.io/etcd/server/v3) >&2
  mv "$OUT/etcd.tmp" "$OUT/etcd"
  log "etcd built in $((SECONDS - start))s"
}

total=$SECONDS
[ -x "$OUT/etcd" ] || build_etcd
[ -x "$OUT/kube-apiserver" ] || build_apiserver
log "control plane ready in $OUT after $((SECONDS - total))s"
"$OUT/kube-apiserver" --version >&2
"$OUT/etcd" --version >&2
echo "$OUT"
