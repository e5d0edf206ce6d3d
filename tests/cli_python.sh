#!/bin/bash
# The Python bindings (python/spqr, ctypes) against independent references:
# tests/python/test_*.py (unittest) with Debian's python3 + numpy over this
# build's libspqr.so (SPQR_LIBRARY) and its CLI (SPQR_CLI).
# Usage: bash cli_python.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
BUILD=$(cd "$(dirname "$SPQR")" && pwd)
. "$ROOT/tests/python/env.sh"
export SPQR_CLI=$SPQR SPQR_ROOT=$ROOT PYTHONDONTWRITEBYTECODE=1 OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=1
cd "$ROOT/tests/python" || exit 1
exec "$PY" -m unittest discover -v -s . -p 'test_*.py'
