#!/usr/bin/env bash
# Long fuzzing campaign: every target (or the ones named) for SECONDS of
# fuzzing each, ONE AT A TIME (one libFuzzer process, no -fork/-jobs), so it
# can run in the background on a shared machine:
#   nohup fuzz/campaign.sh 600 > build-fuzz/campaign.out 2>&1 &
# A crash does not end a target's time: the input is kept in
# build-fuzz/crashes/<name>/ and fuzzing resumes from the same corpus until
# the target has had its SECONDS (at most 20 crashes per target). Logs of each
# segment: build-fuzz/logs/campaign/<name>.<k>.log; the table (executions
# summed over segments, cov/ft of the last status line, crashes) is printed
# at the end and kept in build-fuzz/logs/campaign/summary.txt.
# Usage: fuzz/campaign.sh [SECONDS=600] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
out=build-fuzz
fuzz/run_fuzz.sh build || exit 2
sel="$*"
[ -n "$sel" ] || sel=$(fuzz/run_fuzz.sh list)
logs="$out/logs/campaign"
mkdir -p "$logs"
summary="$logs/summary.txt"
{
  echo "campaign started $(date -u '+%Y-%m-%d %H:%M UTC'), ${secs}s per target"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
  printf '%-16s %12s %7s %7s %8s %8s %s\n' target execs cov ft corpus seconds crashes
} >"$summary"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
for t in $sel; do
  t=${t#fuzz_}
  corpus="$out/corpus/$t" crashes="$out/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  dirs=("$corpus")
  [ -d "fuzz/corpus/$t" ] && dirs+=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  if [ "$t" = spqr_file ] || [ "$t" = kernel_build ]; then dirs+=(tests/fixtures/spqr_fuzz_regressions); fi
  opts=(-max_len="${FUZZ_MAX_LEN:-16384}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/")
  [ -f "fuzz/dict/$t.dict" ] && opts+=(-dict="fuzz/dict/$t.dict")
  start=$(date +%s) total=0 k=0 ncrash=0 execs=0 last=""
  while :; do
    left=$((secs - ($(date +%s) - start)))
    [ "$left" -gt 5 ] || break
    log="$logs/$t.$k.log"
    echo "== $(date -u +%H:%M:%S) fuzz_$t segment $k, ${left}s left"
    "$out/fuzz_$t" "${dirs[@]}" "${opts[@]}" -max_total_time="$left" >"$log" 2>&1
    rc=$?
    e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=$((execs + ${e:-0}))
    l=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    [ -n "$l" ] && last=$l
    k=$((k + 1))
    if [ "$rc" -ne 0 ]; then
      ncrash=$((ncrash + 1))
      echo "   crash (exit $rc): $(grep -m1 -E 'FUZZ PROPERTY|ERROR: (Address|Undefined|Leak|libFuzzer)|runtime error' "$log" | cut -c1-200)"
      grep -m1 'Test unit written' "$log" | sed 's/^/   /'
      [ "$ncrash" -lt 20 ] || break
    fi
  done
  el=$(($(date +%s) - start))
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  printf '%-16s %12s %7s %7s %8s %8s %s\n' "$t" "$execs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$el" "$ncrash" | tee -a "$summary"
done
echo "campaign finished $(date -u '+%Y-%m-%d %H:%M UTC')" >>"$summary"
cat "$summary"
