#!/usr/bin/env bash
# Installs promtool (Prometheus's rule and metrics checker) from Debian's `prometheus` package
# into a cache folder inside target/. Only the promtool binary is taken out of the package
# (`apt-get download` + `dpkg-deb -x`): nothing is installed system-wide and no Prometheus
# server is started. Idempotent: does nothing when promtool is already there, or when $PROMTOOL
# or a promtool on PATH exists. Prints the promtool path.
#
# Usage: tests/install-promtool.sh [CACHE_DIR]   (CACHE_DIR defaults to <repo>/target/tools/promtool)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${1:-$repo/target/tools/promtool}"
promtool="$cache/bin/promtool"

if [[ -n "${PROMTOOL:-}" && -x "$PROMTOOL" ]]; then
  echo "$PROMTOOL"
  exit 0
fi
if [[ -x "$promtool" ]]; then
  echo "$promtool"
  exit 0
fi
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt downloads as the unprivileged _apt user when it can write the folder (root otherwise,
# with a warning).
if [[ $EUID -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
# apt-get download needs the package lists; fetch them once when it finds no candidate.
if ! (cd "$work" && apt-get download prometheus >&2); then
  apt-get update -qq >&2
  (cd "$work" && apt-get download prometheus >&2)
fi
deb="$(find "$work" -maxdepth 1 -name 'prometheus_*.deb' | head -n 1)"
if [[ -z "$deb" ]]; then
  echo "install-promtool.sh: apt-get download prometheus gave no .deb" >&2
  exit 1
fi
dpkg-deb -x "$deb" "$work/unpack"
if [[ ! -x "$work/unpack/usr/bin/promtool" ]]; then
  echo "install-promtool.sh: no usr/bin/promtool in $(basename "$deb")" >&2
  exit 1
fi
mkdir -p "$cache/bin"
cp "$work/unpack/usr/bin/promtool" "$promtool.tmp"
chmod +x "$promtool.tmp"
mv "$promtool.tmp" "$promtool"
"$promtool" --version >&2
echo "$promtool"
