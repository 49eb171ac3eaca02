#!/usr/bin/env bash
# Installs Prism (npm @stoplight/prism-cli) into a cache folder inside target/, for the tests that
# validate our QoD client and simulator against the official CAMARA OpenAPI files.
# Idempotent: does nothing when Prism is already there. Prints the prism path.
#
# Usage: tests/install-prism.sh [CACHE_DIR]   (CACHE_DIR defaults to <repo>/target/tools/prism)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${1:-$repo/target/tools/prism}"
prism="$cache/node_modules/.bin/prism"
version="5.14.2"

if [[ -x "$prism" ]]; then
  echo "$prism"
  exit 0
fi

# Install next to the cache and move it into place, so an interrupted install is never half-used.
staging="$cache.staging.$$"
rm -rf "$staging"
mkdir -p "$staging"
npm install --silent --no-audit --no-fund --prefix "$staging" "@stoplight/prism-cli@$version" >&2
rm -rf "$cache"
mv "$staging" "$cache"
echo "$prism"
