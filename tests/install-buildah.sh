#!/usr/bin/env bash
# Installs buildah from Debian's packages (`apt-get install buildah`, as root; it also brings
# /etc/containers' configuration), for tests/image: the container image is built and run with it,
# without a daemon. Idempotent: does nothing when buildah is on PATH. Prints the buildah path.
#
# Usage: tests/install-buildah.sh
set -euo pipefail

if ! command -v buildah >/dev/null 2>&1; then
  if [[ $EUID -ne 0 ]]; then
    echo "install-buildah.sh: buildah is not installed and this is not root: apt-get install buildah" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # apt-get install needs the package lists; fetch them once when it finds no candidate.
  if ! apt-get install -y -qq buildah >&2; then
    apt-get update -qq >&2
    apt-get install -y -qq buildah >&2
  fi
fi
buildah --version >&2
command -v buildah
