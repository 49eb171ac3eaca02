#!/usr/bin/env bash
# Installs the FastAPI anchor's Python packages (requirements.txt, pinned) into a venv that
# `qod-bench webhook-vs-fastapi` finds: $CARGO_TARGET_DIR/fastapi-anchor (default target/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../../../target}"
venv="$target/fastapi-anchor"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
echo "FastAPI anchor installed in $venv"
