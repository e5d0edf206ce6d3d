#!/usr/bin/env bash
# Quality table: quantizes a model with every preset (plus ablations of
# SpQR's two ingredients), measures held-out perplexity and the KL
# divergence / top-1 agreement of each quantized model against the fp16
# model on the same tokens, and writes a markdown table.
#
# usage: bench/quality.sh [MODEL_DIR] [OUT.md]
# env:   SPQR (binary, default build/spqr), NSAMPLES (128), SEQLEN (256),
#        CTX (256, evaluation window), CHUNKS (0 = the whole held-out text),
#        THREADS (all cores), CALIB (data/calib.txt), HELDOUT (data/heldout.txt),
#        METHODS (extended regex: only rows whose name matches, default all),
#        SPQR_KERNEL (exact: the quantization alone; the AUTO kernel of an
#        AVX-512 VNNI CPU rounds activations to int8, docs/kernels.md)
set -euo pipefail
export SPQR_KERNEL=${SPQR_KERNEL:-exact}
cd "$(dirname "$0")/.."
MODEL=${1:-models/default}
OUT=${2:-bench/results/quality.md}
SPQR=${SPQR:-build/spqr}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-256}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-0}
THREADS=${THREADS:-$(nproc)}
CALIB=${CALIB:-data/calib.txt}
HELDOUT=${HELDOUT:-data/heldout.txt}
WORK=$(mktemp -d /tmp/spqr_quality.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$(dirname "$OUT")"

# name | quantize flags
ROWS=(
  "rtn4|--preset rtn4"
  "gptq4|--preset gptq4"
  "gptq3|--preset gptq3"
  "spqr 3.6bit|--preset 3.6bit"
  "spqr near-lossless|--preset near-lossless"
  "spqr w3, tau 0.5|--preset 3.6bit --outlier-threshold 0.5"
  "spqr w3, tau 1.0|--preset 3.6bit --outlier-threshold 1.0"
  "ablation: 3.6bit without outliers|--preset 3.6bit --outlier-threshold off"
  "ablation: 3.6bit with fp16 statistics (no bilevel)|--preset 3.6bit --qq-scale-bits 0 --qq-zero-bits 0"
  "ablation: 3.6bit, no outliers, fp16 statistics|--preset 3.6bit --outlier-threshold off --qq-scale-bits 0 --qq-zero-bits 0"
  "ablation: w3 g64 fp16 statistics + outliers (bits like 3.6bit)|--preset 3.6bit --groupsize 64 --qq-scale-bits 0 --qq-zero-bits 0"
)

PPL_ARGS=(-f "$HELDOUT" -c "$CTX" -t "$THREADS" --json)
[ "$CHUNKS" -gt 0 ] && PPL_ARGS+=(--chunks "$CHUNKS")
json() { sed -E "s/.*\"$1\": ([-0-9.eE+]+).*/\1/" "$2"; }

echo "fp16 baseline..." >&2
$SPQR perplexity "$MODEL" "${PPL_ARGS[@]}" --kl-base "$WORK/base.kl" >"$WORK/base.json" 2>/dev/null
BASE=$(json ppl "$WORK/base.json")
TOK=$(json tokens "$WORK/base.json")
FP16_MB=$(du -b "$MODEL"/*.safetensors | awk '{s += $1} END {printf "%.2f", s / 1e6}')

{
  echo "| method | avg bits (measured) | formula bits | file MB | ppl | Δppl % | KL (nats) | top-1 % | quantize s |"
  echo "|---|---|---|---|---|---|---|---|---|"
  echo "| fp16 | 16 | 16 | $FP16_MB | $(printf '%.4f' "$BASE") | 0 | 0 | 100 | - |"
} >"$WORK/table.md"

for row in "${ROWS[@]}"; do
  name=${row%%|*}
  flags=${row#*|}
  if [ -n "${METHODS:-}" ] && ! [[ "$name" =~ $METHODS ]]; then continue; fi
  echo "$name: quantize $flags" >&2
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  $SPQR quantize "$MODEL" -o "$WORK/q.spqr" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" \
      -t "$THREADS" -q $flags >"$WORK/q.txt"
  t1=$(date +%s.%N)
  bits=$(sed -nE 's/^average bits per parameter.*: ([0-9.]+) measured.*formula[^:]*: ([0-9.]+)\).*/\1/p' "$WORK/q.txt")
  fbits=$(sed -nE 's/^average bits per parameter.*: ([0-9.]+) measured.*formula[^:]*: ([0-9.]+)\).*/\2/p' "$WORK/q.txt")
  mb=$(du -b "$WORK/q.spqr" | awk '{printf "%.2f", $1 / 1e6}')
  $SPQR perplexity "$WORK/q.spqr" "${PPL_ARGS[@]}" --kl "$WORK/base.kl" >"$WORK/p.json" 2>/dev/null
  ppl=$(json ppl "$WORK/p.json")
  kl=$(json kl_mean "$WORK/p.json")
  top1=$(json top1_agreement "$WORK/p.json")
  awk -v n="$name" -v b="$bits" -v f="$fbits" -v mb="$mb" -v p="$ppl" -v base="$BASE" -v kl="$kl" -v t="$top1" \
      -v s="$(echo "$t1 - $t0" | bc)" \
      'BEGIN { printf "| %s | %.3f | %.3f | %s | %.4f | %+.2f | %.5f | %.2f | %.0f |\n", n, b, f, mb, p, 100 * (p / base - 1), kl, t, s }' \
      >>"$WORK/table.md"
  tail -1 "$WORK/table.md" >&2
done

{
  echo "Model \`$MODEL\`; calibration: $NSAMPLES windows x $SEQLEN tokens of \`$CALIB\` (seed 0);"
  echo "evaluation: \`$HELDOUT\`, windows of $CTX tokens, $TOK tokens scored (protocol of spqr-method.md section 6);"
  echo "KL = mean KL(fp16 || quantized) of the next-token distributions on the same tokens; $THREADS threads."
  echo "Made by: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN CTX=$CTX CHUNKS=$CHUNKS bench/quality.sh $MODEL\`"
  echo
  cat "$WORK/table.md"
} >"$OUT"
cat "$OUT"
