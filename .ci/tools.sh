#!/usr/bin/env bash
# Installs the peer tools the tests use, each at an exact version, into a cache
# outside the repository keyed by version, so only the first run pays. Prints
# the bin directory to put on PATH (tests also read AIRLOCK_TEST_TOOLS).
set -euo pipefail

CACHE="${AIRLOCK_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-tools}"

# name|module/cmd|version
TOOLS=(
  "crane|github.com/google/go-containerregistry/cmd/crane|v0.22.1"
  "oras|oras.land/oras/cmd/oras|v1.3.6"
  "regctl|github.com/regclient/regclient/cmd/regctl|v0.11.7"
  "conformance|github.com/opencontainers/distribution-spec/conformance|v0.0.0-20260831232431-97274622c111"
  "registry|github.com/distribution/distribution/v3/cmd/registry|v3.1.2"
  # cosign is a large build (~8 minutes cold on 2 cores); cached like the rest.
  "cosign|github.com/sigstore/cosign/v2/cmd/cosign|v2.6.5"
)

# Debian packages the tests need, at exact versions: binaries copied into
# test images (busybox-static, nginx-light, redis-server, nodejs), Debian's
# python3 and CA bundle the hardening tests build an image from, curl (a
# dynamically linked program for the shared-library tests). Installed when a
# package is missing or at another version; services are not started.
DEBS=(
  "busybox-static=1:1.35.0-4+deb12u1+b1"
  "nginx-light=1.22.1-9+deb12u11"
  "redis-server=5:7.0.15-1~deb12u10"
  "nodejs=20.20.2-1nodesource1+repack1"
  "python3-minimal=3.11.2-1+b1"
  "python3.11-minimal=3.11.2-6+deb12u6"
  "libpython3.11-stdlib=3.11.2-6+deb12u6"
  "ca-certificates=20230311+deb12u1"
  "curl=7.88.1-10+deb12u14"
)
NEED=()
for d in "${DEBS[@]}"; do
  have="$(dpkg-query -W -f='${Version}' "${d%%=*}" 2>/dev/null || true)"
  [ "$have" = "${d#*=}" ] || NEED+=("$d")
done
if [ "${#NEED[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${NEED[*]}" >&2
    # No daemon may start on install (nginx would take port 80, redis 6379).
    rcd=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      rcd=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$rcd" && chmod 755 "$rcd"
    fi
    status=0
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "${NEED[@]}") >&2 || status=$?
    [ -z "$rcd" ] || rm -f "$rcd"
    [ "$status" = 0 ] || { echo "apt-get install ${NEED[*]} failed" >&2; exit "$status"; }
  else
    echo "note: run as root on Debian 12 to install ${NEED[*]} for the image tests" >&2
  fi
fi

BIN="$CACHE/bin"
mkdir -p "$BIN"
for t in "${TOOLS[@]}"; do
  IFS='|' read -r name pkg version <<<"$t"
  dir="$CACHE/$name-$version"
  if [ ! -x "$dir/$name" ]; then
    echo "installing $name $version" >&2
    mkdir -p "$dir"
    (cd "$dir" && GOBIN="$dir" GOFLAGS=-mod=mod go install "$pkg@$version") >&2
  fi
  ln -sf "$dir/$name" "$BIN/$name"
done
# --- kubetest (owned by the admission e2e tests) -----------------------------
# kube-apiserver and etcd for the tests against a real control plane
# (internal/admission/kube_test.go), built from the Go module proxy by
# .ci/kube.sh into $CACHE/kube-<version>-etcd-<version> (the first run pays,
# see docs/kubetest.md). Linked into the bin dir as well; the tests find them
# through AIRLOCK_KUBE_ASSETS, AIRLOCK_TEST_TOOLS or that cache directory.
KUBE_ASSETS="$(AIRLOCK_TOOLS_CACHE="$CACHE" "$(dirname "$0")/kube.sh")"
ln -sf "$KUBE_ASSETS/kube-apiserver" "$BIN/kube-apiserver"
ln -sf "$KUBE_ASSETS/etcd" "$BIN/etcd"
# --- end kubetest --------------------------------------------------------------

echo "$BIN"
