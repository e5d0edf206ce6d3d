#!/bin/bash
# The calibration side of `spqr quantize` (issue 16: forward and Hessian
# accumulation at >= 50% of OpenBLAS sgemm speed) measured in the pipeline
# itself: its per-block "calibration" line (-v) gives the forward's wall and
# CPU seconds with the GFLOP of the linears it ran (attention and norms are
# timed but not counted) and the same for the Hessians (X^T X, ssyrk and
# the exact sum); a 4096^3 sgemm on THREADS BLAS threads is timed before
# and after it (bench_quantize), and the rates are printed as ratios to the
# sgemm's mean rate, per wall and per CPU second.
# Usage: bench/pipeline_rate.sh BUILD_DIR MODEL_DIR CALIB OUT_DIR
# env: NSAMPLES (2) SEQLEN (512) THREADS (2) BLOCKS (1)
# MODEL_DIR e.g. a 7B-shaped block: build/gen_synthetic_llama DIR --layers 1
set -u
B=$1; MODEL=$2; CAL=$3; OUT=$4
NS=${NSAMPLES:-2}; SL=${SEQLEN:-512}; TH=${THREADS:-2}; BLOCKS=${BLOCKS:-1}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive
sg() { "$B/bench_quantize" -shapes 64x64 -only rtn -no-pipeline -t "$TH" 2>/dev/null |
    sed -n 's/.*sgemm 4096^3 just before: \([0-9.]*\) s.*CPU \([0-9.]*\) s.*/\1 \2/p'; }
echo "== $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r w0 c0 < <(sg)
rm -rf "$OUT/pr.spqr" "$OUT/pr.spqr.partial"
"$B/spqr" quantize "$MODEL" --calib "$CAL" --nsamples "$NS" --seqlen "$SL" --recipe paper-w3 --dense-head \
    --dense-embed -t "$TH" -v -o "$OUT/pr.spqr" >"$OUT/pr.out" 2>"$OUT/pr.err" || { echo "quantize failed"; tail -3 "$OUT/pr.err"; exit 1; }
read -r w1 c1 < <(sg)
echo "== $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sgemm 4096^3 before / after: $w0 / $w1 s wall, $c0 / $c1 s CPU"
grep -o 'block [0-9]* calibration:.*' "$OUT/pr.err" | head -n "$BLOCKS" | while read -r line; do
    echo "$line"
    echo "$line" | awk -v w0="$w0" -v w1="$w1" -v c0="$c0" -v c1="$c1" '{
        g = 2 * 4096^3 / 1e9; sw = (g / w0 + g / w1) / 2; sc = (g / c0 + g / c1) / 2;
        # fields: block N calibration: forward FW s wall / FC s CPU for FG GFLOP ...; Hessians HW s wall / HC s CPU for HG GFLOP
        fw = $5; fc = $9; fg = $13; hw = $18; hc = $22; hg = $26;
        printf "  forward: %.1f GFLOP/s wall = %.0f%% of sgemm (%.1f), %.1f per CPU s = %.0f%% of sgemm (%.1f)\n", fg / fw, 100 * fg / fw / sw, sw, fg / fc, 100 * fg / fc / sc, sc;
        printf "  Hessians: %.1f GFLOP/s wall = %.0f%%, %.1f per CPU s = %.0f%%\n", hg / hw, 100 * hg / hw / sw, hg / hc, 100 * hg / hc / sc }'
done
