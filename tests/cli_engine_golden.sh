#!/usr/bin/env bash
# The quantization engine against recorded results: bench/engine_golden
# hashes every output of spqr_quantize_layer over 4 shapes x 16 settings.
# (1) The hashes equal those of the fp32 Cholesky engine
# (bench/results/engine-golden-fp32.txt) at 1 and 2 engine threads: any
# change of the bytes fails. (2) Its reported rel_hessian_error is within
# 1e-3 relative of that of the double engine before it (commit 8f929e8,
# engine-golden-8f929e8.txt; measured largest difference 6.6e-5): the
# stated tolerance of the fp32 change (docs/quantize.md, "Engine"). The
# hashes depend on OpenBLAS's kernels in their last bits, so on another BLAS
# core than the recorded one the comparison is skipped (reported, exit 0).
# usage: bash cli_engine_golden.sh <spqr binary> <repo root>
set -u
SPQR=${1:?spqr binary}
ROOT=${2:?repo root}
GOLD="$ROOT/bench/results/engine-golden-fp32.txt"
OLD="$ROOT/bench/results/engine-golden-8f929e8.txt"
BIN="$(dirname "$SPQR")/engine_golden"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
want=$(sed -n 's/^# openblas //p' "$GOLD")
have=$("$BIN" -core)
if [ "$want" != "$have" ]; then
    echo "SKIP: golden hashes made with OpenBLAS core $want, this machine uses $have"
    exit 0
fi
export OMP_WAIT_POLICY=passive
out="${TMPDIR:-/tmp}/engine_golden.$$"
rc=0
for t in 1 2; do
    if OPENBLAS_NUM_THREADS=1 "$BIN" -t $t -c "$GOLD" >"$out" 2>&1; then
        echo "ok: $t threads: $(tail -1 "$out")"
    else
        echo "FAIL: $t threads:"; head -20 "$out"; rc=1
    fi
done
if OPENBLAS_NUM_THREADS=1 "$BIN" -t 2 -c "$OLD" -rel-only -rel-tol 1e-3 >"$out" 2>&1; then
    echo "ok: against the double engine (8f929e8): $(tail -1 "$out")"
else
    echo "FAIL: against the double engine (8f929e8):"; head -20 "$out"; rc=1
fi
rm -f "$out"
exit $rc
