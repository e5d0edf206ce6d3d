#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (fuzz/fuzz_<name>.c; docs/fuzzing.md).
#
# Usage: fuzz/run_fuzz.sh [TARGET|all|build|list] [SECONDS=60] [extra libFuzzer args...]
#        fuzz/run_fuzz.sh SECONDS   (the .spqr reader target alone, as before)
#   TARGET   one target name (e.g. safetensors, or fuzz_safetensors)
#   all      every target in turn, SECONDS each (CI: `fuzz/run_fuzz.sh all 30`)
#   build    only build (library + every target)
#   list     print the target names
#
# Needs clang with its runtime (Debian: clang, libclang-rt-<ver>-dev for
# libclang_rt.fuzzer, libomp-<ver>-dev for -fopenmp; scripts/install_fuzz_deps.sh)
# and the library's dependencies (scripts/install_deps.sh).
# The library is compiled with clang -fsanitize=fuzzer-no-link,address,undefined
# from the project's own CMake source list (every .c under src/ but the CLI)
# into build-fuzz/lib; fuzz/clang_compat.h is force-included to paper over
# two places the gcc-only code does not compile with clang 14.
# Each run fuzzes one target at a time (one process, no -fork/-jobs) with its
# seeds fuzz/corpus/<name>/ (read-only) and fuzz/regressions/<name>/, keeps new
# inputs in build-fuzz/corpus/<name>/, logs to build-fuzz/logs/<name>.log and
# writes crashing inputs to build-fuzz/crashes/<name>/. Exit status: 0 when no
# target crashed, 1 otherwise (2: usage or build error).
# Environment: CC (clang), JOBS (build parallelism, 2), FUZZ_MAX_LEN (per-run
# override of -max_len), FUZZ_LOG_DIR (logs and summary.txt, default
# build-fuzz/logs), FUZZ_CORPUS_ONLY=1 (only replay the seeds and
# regressions, no fuzzing: -runs=0).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode="${1:-all}"
secs="${2:-60}"
shift 2 2>/dev/null || shift $# || true
# the old interface, `fuzz/run_fuzz.sh SECONDS`: the .spqr reader target
if [[ "$mode" =~ ^[0-9]+$ ]]; then secs=$mode mode=spqr_file; fi
out=build-fuzz
CC="${CC:-clang}"
JOBS="${JOBS:-2}"

targets() { for f in fuzz/fuzz_*.c; do b=${f##*/fuzz_}; echo "${b%.c}"; done; }
if [ "$mode" = list ]; then targets; exit 0; fi

if ! "$CC" --version 2>/dev/null | grep -q clang; then
  echo "run_fuzz.sh: needs clang (set CC; scripts/install_fuzz_deps.sh installs it)" >&2
  exit 2
fi

# -------------------------------------------------------------- build
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-O1 -g $san"
build_lib() {
  echo "== building the library for fuzzing ($out/lib)"
  mkdir -p "$out"
  if ! cmake -S . -B "$out/lib" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER="$CC" \
       "-DCMAKE_C_FLAGS=$cflags -fsanitize=fuzzer-no-link -include $root/fuzz/clang_compat.h" >"$out/cmake.log" 2>&1; then
    echo "run_fuzz.sh: cmake failed, see $out/cmake.log" >&2; tail -20 "$out/cmake.log" >&2; exit 2
  fi
  if ! cmake --build "$out/lib" -j"$JOBS" --target spqr >"$out/lib.log" 2>&1; then
    echo "run_fuzz.sh: library build failed, see $out/lib.log" >&2; grep -m10 -A3 "error" "$out/lib.log" >&2 || true; exit 2
  fi
}
build_target() {
  local t=$1 extra=""
  [ "$t" = safetensors ] && extra="-Wl,--wrap=mmap" # records the reader's mapping
  local exe="$out/fuzz_$t"
  if [ -x "$exe" ] && [ "$exe" -nt "$out/lib/libspqr.a" ] && [ "$exe" -nt "fuzz/fuzz_$t.c" ] &&
     [ -z "$(find fuzz -name '*.h' -newer "$exe")" ]; then return 0; fi
  echo "== building $exe"
  # shellcheck disable=SC2086
  if ! "$CC" -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DSPQR_FUZZ_ROOT="\"$root\"" $cflags \
       -fsanitize=fuzzer -Iinclude -Isrc -Ifuzz "fuzz/fuzz_$t.c" fuzz/clang_compat.c "$out/lib/libspqr.a" $extra \
       -fopenmp -llapacke -lopenblas -lcjson -lm -o "$exe" 2>"$out/build_$t.log"; then
    echo "run_fuzz.sh: building fuzz_$t failed:" >&2; cat "$out/build_$t.log" >&2; exit 2
  fi
}

case "$mode" in
  all|build) sel=$(targets) ;;
  *) sel=${mode#fuzz_}; [ -f "fuzz/fuzz_$sel.c" ] || { echo "run_fuzz.sh: no target '$mode' (fuzz/run_fuzz.sh list)" >&2; exit 2; } ;;
esac
build_lib
for t in $sel; do build_target "$t"; done
[ "$mode" = build ] && exit 0

# -------------------------------------------------------------- run
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
logs="${FUZZ_LOG_DIR:-$out/logs}"
mkdir -p "$logs"
summary="$logs/summary.txt"
: >"$summary"
failed=0
for t in $sel; do
  corpus="$out/corpus/$t" crashes="$out/crashes/$t" log="$logs/$t.log"
  mkdir -p "$corpus" "$crashes"
  dirs=("$corpus")
  [ -d "fuzz/corpus/$t" ] && dirs+=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  if [ "$t" = spqr_file ] || [ "$t" = kernel_build ]; then dirs+=(tests/fixtures/spqr_fuzz_regressions); fi
  opts=(-max_len="${FUZZ_MAX_LEN:-16384}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/")
  [ -f "fuzz/dict/$t.dict" ] && opts+=(-dict="fuzz/dict/$t.dict")
  if [ "${FUZZ_CORPUS_ONLY:-0}" = 1 ]; then opts+=(-runs=0); else opts+=(-max_total_time="$secs"); fi
  echo "== fuzz_$t for ${secs}s (seeds: ${dirs[*]:1}; log $log)"
  set +e
  "$out/fuzz_$t" "${dirs[@]}" "${opts[@]}" "$@" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="FAILED (exit $rc)"
    failed=1
    grep -E "ERROR: |FUZZ PROPERTY|SUMMARY: |^ *#[0-9]+ 0x.* in |Test unit written" "$log" | head -30 >&2 || true
  fi
  printf '%-16s execs=%-10s cov=%-6s ft=%-6s corpus=%-12s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$status" | tee -a "$summary"
done
echo "== summary in $summary; crashing inputs (if any) under $out/crashes/"
exit "$failed"
