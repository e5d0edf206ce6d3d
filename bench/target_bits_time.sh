#!/usr/bin/env bash
# Quantization time of --target-bits against fixed presets (issue 14's "at
# most 3x a fixed preset's"): REPS rounds, each running every row once back
# to back (so load changes hit all rows alike), process CPU seconds
# (user+sys) and wall seconds from /usr/bin/time; prints each round's ratio
# of every row to the first row and the spread over the rounds.
#
# usage: bench/target_bits_time.sh [MODEL_DIR]
# env:   SPQR (build/spqr), REPS (3), NSAMPLES (32), SEQLEN (256), THREADS (2),
#        CALIB (data/calib.txt), ROWS ("name|flags[|binary];..." overrides the rows;
#        a row's binary, e.g. an older build, replaces SPQR for that row)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/default}
SPQR=${SPQR:-build/spqr}
REPS=${REPS:-3}
NSAMPLES=${NSAMPLES:-32}
SEQLEN=${SEQLEN:-256}
THREADS=${THREADS:-2}
CALIB=${CALIB:-data/calib.txt}
ROWS=${ROWS:-"paper-w3|--recipe paper-w3;gptq4|--recipe gptq4;target-bits 3.6|--target-bits 3.6"}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
WORK=$(mktemp -d /tmp/spqr_tbtime.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
IFS=';' read -r -a rows <<<"$ROWS"

echo "model $MODEL, --nsamples $NSAMPLES --seqlen $SEQLEN -t $THREADS, $REPS rounds; $(uptime)"
declare -A cpu wall
for ((r = 1; r <= REPS; r++)); do
  for i in "${!rows[@]}"; do
    IFS='|' read -r _ flags bin <<<"${rows[$i]}"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S %e" -o "$WORK/t" "${bin:-$SPQR}" quantize "$MODEL" --calib "$CALIB" --nsamples "$NSAMPLES" \
      --seqlen "$SEQLEN" -t "$THREADS" -q $flags -o "$WORK/out.spqr" >/dev/null
    read -r u s e <"$WORK/t"
    cpu[$r,$i]=$(echo "$u + $s" | bc -l)
    wall[$r,$i]=$e
  done
  line="round $r:"
  for i in "${!rows[@]}"; do
    line+=$(printf ' %s %.2f cpu-s %.2f wall-s (%.2fx cpu, %.2fx wall);' "${rows[$i]%%|*}" "${cpu[$r,$i]}" \
      "${wall[$r,$i]}" "$(echo "${cpu[$r,$i]} / ${cpu[$r,0]}" | bc -l)" "$(echo "${wall[$r,$i]} / ${wall[$r,0]}" | bc -l)")
  done
  echo "$line"
done
for i in "${!rows[@]}"; do
  ((i == 0)) && continue
  lo=1000000 hi=0 wlo=1000000 whi=0
  for ((r = 1; r <= REPS; r++)); do
    x=$(echo "${cpu[$r,$i]} / ${cpu[$r,0]}" | bc -l) w=$(echo "${wall[$r,$i]} / ${wall[$r,0]}" | bc -l)
    lo=$(echo "if ($x < $lo) $x else $lo" | bc -l) hi=$(echo "if ($x > $hi) $x else $hi" | bc -l)
    wlo=$(echo "if ($w < $wlo) $w else $wlo" | bc -l) whi=$(echo "if ($w > $whi) $w else $whi" | bc -l)
  done
  printf '%s / %s: %.2f-%.2fx CPU seconds, %.2f-%.2fx wall over %d rounds\n' "${rows[$i]%%|*}" "${rows[0]%%|*}" \
    "$lo" "$hi" "$wlo" "$whi" "$REPS"
done
echo "done; $(uptime)"
