#!/usr/bin/env bash
# README command 2: set up what the tests need (PostGIS included) and run the whole suite.
# The tests build their own database with the migrations; they never skip for want of PostGIS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh" --server-only
cd "$ROOT"
exec .venv/bin/pytest "$@"
