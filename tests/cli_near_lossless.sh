#!/bin/bash
# Regression: the near-lossless preset (the budget --target-bits 4.0) keeps the default model within 1% of
# its fp16 perplexity (spqr-method.md: near-lossless = at most 1% relative
# perplexity). Small calibration (32 windows x 256 tokens) and the first 16
# held-out windows of 256 tokens, the same for both models, to stay < 60 s.
# Usage: bash cli_near_lossless.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
MODEL=$ROOT/models/default
if [ ! -f "$MODEL/config.json" ] || [ ! -f "$ROOT/data/heldout.txt" ]; then
    echo "FAIL: $MODEL or data/heldout.txt not present (both are committed: broken checkout)"
    exit 1
fi
TMP=$(mktemp -d /tmp/spqr_nl.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
"$SPQR" quantize "$MODEL" -o "$TMP/nl.spqr" --calib "$ROOT/data/calib.txt" --preset near-lossless \
    --nsamples 32 --seqlen 256 -t 2 -q >"$TMP/q.txt" 2>&1 || { echo "FAIL: quantize: $(tail -3 "$TMP/q.txt")"; exit 1; }
P=(-f "$ROOT/data/heldout.txt" -c 256 --chunks 16 -t 2 --json)
F=$("$SPQR" perplexity "$MODEL" "${P[@]}" 2>/dev/null | sed -E 's/.*"ppl": ([0-9.]+).*/\1/')
Q=$("$SPQR" perplexity "$TMP/nl.spqr" "${P[@]}" 2>/dev/null | sed -E 's/.*"ppl": ([0-9.]+).*/\1/')
grep '^average bits' "$TMP/q.txt"
echo "fp16 ppl $F, near-lossless ppl $Q"
if awk -v q="$Q" -v f="$F" 'BEGIN { exit !(q > 0 && f > 0 && q / f < 1.01 && q != f) }'; then
    echo "ok: within 1% of fp16"
else
    echo "FAIL: near-lossless ppl $Q is not within 1% of fp16 $F"
    exit 1
fi
