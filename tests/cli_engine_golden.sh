#!/usr/bin/env bash
# The quantization engine gives the same bytes as the engine before issue 16
# (commit 8f929e8): bench/engine_golden hashes every output of
# spqr_quantize_layer over 4 shapes x 16 settings and compares with the
# hashes that commit made (bench/results/engine-golden-8f929e8.txt), the
# reported rel_hessian_error within 1e-6 relative (it is evaluated in fp32
# now, docs/quantize.md "Engine"). The hashes depend on OpenBLAS's kernels
# in their last bits, so on another BLAS core than the recorded one the
# comparison is skipped (reported, exit 0).
# usage: bash cli_engine_golden.sh <spqr binary> <repo root>
set -u
SPQR=${1:?spqr binary}
ROOT=${2:?repo root}
GOLD="$ROOT/bench/results/engine-golden-8f929e8.txt"
BIN="$(dirname "$SPQR")/engine_golden"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
want=$(sed -n 's/^# openblas //p' "$GOLD")
have=$("$BIN" -core)
if [ "$want" != "$have" ]; then
    echo "SKIP: golden hashes made with OpenBLAS core $want, this machine uses $have"
    exit 0
fi
export OMP_WAIT_POLICY=passive
rc=0
for t in 1 2; do
    if OPENBLAS_NUM_THREADS=1 "$BIN" -t $t -c "$GOLD" -rel-tol 1e-6 >"${TMPDIR:-/tmp}/engine_golden.$$" 2>&1; then
        echo "ok: $t threads: $(tail -1 "${TMPDIR:-/tmp}/engine_golden.$$")"
    else
        echo "FAIL: $t threads:"; head -20 "${TMPDIR:-/tmp}/engine_golden.$$"; rc=1
    fi
done
rm -f "${TMPDIR:-/tmp}/engine_golden.$$"
exit $rc
