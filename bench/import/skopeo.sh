#!/usr/bin/env bash
# Installs skopeo for bench/import at an exact version and prints its path.
# skopeo is a cgo program (gpgme, btrfs, devicemapper) and the Go module proxy
# reachable here refuses github.com/containers/skopeo, so `go install` (the way
# .ci/tools.sh pins the other peers) cannot build it: Debian's package it is.
set -euo pipefail

VERSION="1.9.3+ds1-1+b10"

have="$(dpkg-query -W -f='${Version}' skopeo 2>/dev/null || true)"
if [ "$have" != "$VERSION" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "skopeo $VERSION is not installed; as root: apt-get install skopeo=$VERSION" >&2
    exit 1
  fi
  echo "installing skopeo $VERSION" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "skopeo=$VERSION" >&2
fi
command -v skopeo
