#!/usr/bin/env bash
# README command 1: set everything up and serve the demo for both pilot forces.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
echo "[harmmap] serving on http://${HARMMAP_HOST:-127.0.0.1}:${HARMMAP_PORT:-8000} (Ctrl-C stops)" >&2
exec .venv/bin/harmmap serve
