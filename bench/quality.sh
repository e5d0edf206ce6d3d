#!/usr/bin/env bash
# Quality table: quantizes a model with every preset (plus ablations of
# SpQR's two ingredients), measures held-out perplexity and the KL
# divergence / top-1 agreement of each quantized model against the fp16
# model on the same tokens, and writes a markdown table.
#
# With TARGETS (bit budgets, e.g. "2.5 3.0 3.5 4.0 4.5 5.0") it also runs
# `quantize $TARGET_FLAG B` for each (TARGET_FLAG: --target-bits, the whole
# file, by default; --target-bits-linears for the quantized linears alone);
# a budget the model cannot reach is listed with the reachable range. With
# gnuplot installed it draws KL against bits per parameter (PLOT_X = file:
# whole-file bits, linears: bits of the quantized linears) to OUT with .png.
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
  "rtn3|--recipe rtn4 --wbits 3"
  "rtn4|--recipe rtn4"
  "rtn5|--recipe rtn4 --wbits 5"
  "gptq2|--recipe gptq3 --wbits 2"
  "gptq3|--recipe gptq3"
  "gptq4|--recipe gptq4"
  "gptq5|--recipe gptq4 --wbits 5"
  "spqr paper-w3|--recipe paper-w3"
  "spqr 3.6bit|--preset 3.6bit"
  "spqr paper-w4|--recipe paper-w4"
  "spqr near-lossless|--preset near-lossless"
  "spqr w3, tau 0.5|--recipe paper-w3 --outlier-threshold 0.5"
  "spqr w3, tau 1.0|--recipe paper-w3 --outlier-threshold 1.0"
  "ablation: paper-w3 without outliers|--recipe paper-w3 --outlier-threshold off"
  "ablation: paper-w3 with fp16 statistics (no bilevel)|--recipe paper-w3 --qq-scale-bits 0 --qq-zero-bits 0"
  "ablation: paper-w3, no outliers, fp16 statistics|--recipe paper-w3 --outlier-threshold off --qq-scale-bits 0 --qq-zero-bits 0"
  "ablation: w3 g64 fp16 statistics + outliers (bits like paper-w3)|--recipe paper-w3 --groupsize 64 --qq-scale-bits 0 --qq-zero-bits 0"
)
TARGET_FLAG=${TARGET_FLAG:---target-bits}
PLOT_X=${PLOT_X:-file}
for b in ${TARGETS:-}; do ROWS+=("target $b|$TARGET_FLAG $b"); done

PPL_ARGS=(-f "$HELDOUT" -c "$CTX" -t "$THREADS" --json)
[ "$CHUNKS" -gt 0 ] && PPL_ARGS+=(--chunks "$CHUNKS")
json() { sed -E "s/.*\"$1\": ([-0-9.eE+]+).*/\1/" "$2"; }

echo "fp16 baseline..." >&2
$SPQR perplexity "$MODEL" "${PPL_ARGS[@]}" --kl-base "$WORK/base.kl" >"$WORK/base.json" 2>/dev/null
BASE=$(json ppl "$WORK/base.json")
TOK=$(json tokens "$WORK/base.json")
FP16_MB=$(du -b "$MODEL"/*.safetensors | awk '{s += $1} END {printf "%.2f", s / 1e6}')

{
  echo "| method | avg bits (measured) | formula bits | file bits/param | file MB | ppl | Δppl % | KL (nats) | top-1 % | quantize s |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  echo "| fp16 | 16 | 16 | 16 | $FP16_MB | $(printf '%.4f' "$BASE") | 0 | 0 | 100 | - |"
} >"$WORK/table.md"

for row in "${ROWS[@]}"; do
  name=${row%%|*}
  flags=${row#*|}
  if [ -n "${METHODS:-}" ] && ! [[ "$name" =~ $METHODS ]]; then continue; fi
  echo "$name: quantize $flags" >&2
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  if ! $SPQR quantize "$MODEL" -o "$WORK/q.spqr" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" \
      -t "$THREADS" -q $flags >"$WORK/q.txt" 2>"$WORK/q.err"; then
    if grep -q 'outside what the settings can reach' "$WORK/q.err"; then
      echo "| $name | not reachable: $(sed -E 's/.*can reach for this model: //' "$WORK/q.err") | | | | | | | | |" >>"$WORK/table.md"
      tail -1 "$WORK/table.md" >&2
      continue
    fi
    cat "$WORK/q.err" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  fbits=$($SPQR info "$WORK/q.spqr" | sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p')
  bits=$(sed -nE 's/^average bits per parameter.*: ([0-9.]+) measured.*formula[^:]*: ([0-9.]+)\).*/\1/p' "$WORK/q.txt")
  formula=$(sed -nE 's/^average bits per parameter.*: ([0-9.]+) measured.*formula[^:]*: ([0-9.]+)\).*/\2/p' "$WORK/q.txt")
  mb=$(du -b "$WORK/q.spqr" | awk '{printf "%.2f", $1 / 1e6}')
  $SPQR perplexity "$WORK/q.spqr" "${PPL_ARGS[@]}" --kl "$WORK/base.kl" >"$WORK/p.json" 2>/dev/null
  ppl=$(json ppl "$WORK/p.json")
  kl=$(json kl_mean "$WORK/p.json")
  top1=$(json top1_agreement "$WORK/p.json")
  awk -v n="$name" -v b="$bits" -v f="$formula" -v fb="$fbits" -v mb="$mb" -v p="$ppl" -v base="$BASE" -v kl="$kl" -v t="$top1" \
      -v s="$(echo "$t1 - $t0" | bc)" \
      'BEGIN { printf "| %s | %.3f | %.3f | %.3f | %s | %.4f | %+.2f | %.5f | %.2f | %.0f |\n", n, b, f, fb, mb, p, 100 * (p / base - 1), kl, t, s }' \
      >>"$WORK/table.md"
  tail -1 "$WORK/table.md" >&2
done

{
  echo "Model \`$MODEL\`; calibration: $NSAMPLES windows x $SEQLEN tokens of \`$CALIB\` (seed 0);"
  echo "evaluation: \`$HELDOUT\`, windows of $CTX tokens, $TOK tokens scored (protocol of spqr-method.md section 6);"
  echo "KL = mean KL(fp16 || quantized) of the next-token distributions on the same tokens; $THREADS threads."
  echo "Made by: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN CTX=$CTX CHUNKS=$CHUNKS${METHODS:+ METHODS='$METHODS'}${TARGETS:+ TARGETS=\"$TARGETS\" TARGET_FLAG=$TARGET_FLAG PLOT_X=$PLOT_X} bench/quality.sh $MODEL\`"
  echo
  cat "$WORK/table.md"
} >"$OUT"
# each budget against the best of GPTQ and RTN at its bits: the KL of the
# gptqN rows and of the rtnN rows, each interpolated log-linearly in bits
# (PLOT_X's column), the lower of the two
if grep -q '^| target' "$WORK/table.md"; then
  {
    echo
    echo "Each row against the best of GPTQ and RTN at the same bits ($PLOT_X bits; log-linear interpolation of"
    echo "the KL of the gptqN rows and of the rtnN rows between their two neighbours, the lower of the two; outside"
    echo "their range: not compared):"
    echo
    awk -F'|' -v c="$([ "$PLOT_X" = file ] && echo 5 || echo 3)" '
      function interp(nm, x,   i, j, t, lo, hi, f) {
        lo = hi = 0
        for (i = 1; i <= n[nm]; i++) {
          if (b[nm, i] <= x && (!lo || b[nm, i] > b[nm, lo])) lo = i
          if (b[nm, i] >= x && (!hi || b[nm, i] < b[nm, hi])) hi = i
        }
        if (!lo || !hi) return -1
        if (b[nm, hi] == b[nm, lo]) return k[nm, lo]
        f = (x - b[nm, lo]) / (b[nm, hi] - b[nm, lo])
        return exp((1 - f) * log(k[nm, lo]) + f * log(k[nm, hi]))
      }
      NR > 2 && $9 + 0 > 0 {
        gsub(/^ +| +$/, "", $2); name[++m] = $2; x[m] = $c + 0; kl[m] = $9 + 0
        if ($2 ~ /^gptq[0-9]+$/) { n["g"]++; b["g", n["g"]] = $c + 0; k["g", n["g"]] = $9 + 0 }
        if ($2 ~ /^rtn[0-9]+$/) { n["r"]++; b["r", n["r"]] = $c + 0; k["r", n["r"]] = $9 + 0 }
      }
      END {
        for (i = 1; i <= m; i++) {
          if (name[i] ~ /^(gptq|rtn)[0-9]+$/) continue
          g = interp("g", x[i]); r = interp("r", x[i])
          ref = g < 0 ? r : (r < 0 ? g : (g < r ? g : r))
          if (ref < 0) { printf "- %s (%.3f bits): outside the GPTQ/RTN range\n", name[i], x[i]; continue }
          printf "- %s (%.3f bits): KL %.5f vs %.5f (%s): %s, %.2fx\n", name[i], x[i], kl[i], ref,
                 ref == g ? "GPTQ" : "RTN", kl[i] < ref ? "below the curve" : "ABOVE the curve", kl[i] / ref
        }
      }' "$WORK/table.md"
  } >>"$OUT"
fi
cat "$OUT"

# KL against bits: the --target-bits rows as a curve, every fixed recipe as a point
if command -v gnuplot >/dev/null && [ -n "${TARGETS:-}" ]; then
  col=$([ "$PLOT_X" = file ] && echo 5 || echo 3)
  awk -F'|' -v c="$col" 'NR > 2 && $2 ~ /^ target/ && $9 + 0 > 0 { print $c, $9 }' "$WORK/table.md" >"$WORK/target.dat"
  awk -F'|' -v c="$col" 'NR > 2 && $2 !~ /^ target/ && $2 !~ /fp16/ && $9 + 0 > 0 { gsub(/^ +| +$/, "", $2); printf "%s %s \"%s\"\n", $c, $9, $2 }' \
      "$WORK/table.md" >"$WORK/fixed.dat"
  gnuplot <<GP
set terminal pngcairo size 900,600 noenhanced
set output "${OUT%.md}.png"
set title "$MODEL: KL to fp16 against bits per parameter ($PLOT_X)"
set xlabel "measured bits per parameter ($([ "$PLOT_X" = file ] && echo 'whole file' || echo 'quantized linears'))"
set ylabel "mean KL (nats)"
set logscale y
set grid
set key top right
plot "$WORK/target.dat" using 1:2 with linespoints lw 2 pt 7 title "$TARGET_FLAG B", \
     "$WORK/fixed.dat" using 1:2 with points pt 5 ps 1.2 title "fixed presets", \
     "$WORK/fixed.dat" using 1:2:3 with labels offset 0,1 font ",8" notitle
GP
  echo "plot: ${OUT%.md}.png" >&2
fi
