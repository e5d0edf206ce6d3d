#!/usr/bin/env bash
# Fuzzes the .spqr reader with libFuzzer (manual tool, not part of CI).
# Usage: fuzz/run_fuzz.sh [SECONDS=60] [extra libFuzzer args...]
# Needs clang with its runtime (Debian: clang + libclang-rt-<ver>-dev, which
# ships libclang_rt.fuzzer) and libcjson-dev. Builds into build-fuzz/,
# seeds the corpus with a small valid file written by test_spqr_file, runs
# for SECONDS, and copies crashing inputs to build-fuzz/crashes/. Add each
# one (once fixed) to tests/fixtures/spqr_fuzz_regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
out=build-fuzz
mkdir -p "$out/corpus" "$out/crashes"
CC="${CC:-clang}"
if ! "$CC" --version 2>/dev/null | grep -q clang; then
  echo "run_fuzz.sh: needs clang (set CC)" >&2
  exit 2
fi

# The reader and what the target calls: core, io, format, reference kernels.
srcs="src/core/error.c src/core/half.c src/io/file.c src/io/dtype.c src/io/safetensors_read.c
      src/format/bitpack.c src/format/tensor.c src/format/spqr_file_crc32c.c src/format/spqr_file_layout.c
      src/format/spqr_file_read.c src/kernels/ref.c"
flags="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -fno-omit-frame-pointer -Iinclude -Isrc"
echo "== building $out/fuzz_spqr_file"
# shellcheck disable=SC2086
"$CC" $flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  fuzz/fuzz_spqr_file.c $srcs -lcjson -lm -o "$out/fuzz_spqr_file"

# Seeds: the valid tiny files checked in with the regression inputs, plus
# (when the library builds) the full multi-section fixture of the unit test
# and four more tiny files it writes.
if [ -z "$(ls -A "$out/corpus" 2>/dev/null)" ]; then
  echo "== seeding the corpus"
  cp tests/fixtures/spqr_fuzz_regressions/* "$out/corpus/" 2>/dev/null || true
  rm -f "$out/corpus/README.md"
  if cmake -S . -B "$out/lib" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
     cmake --build "$out/lib" -j"$(nproc)" --target test_spqr_file >"$out/lib.log" 2>&1; then
    SPQR_WRITE_SEEDS="$PWD/$out/corpus" "$out/lib/test_spqr_file" tests/fixtures >/dev/null || true
  else
    echo "   (library build failed, see $out/lib.log: seeding with the checked-in files only)"
  fi
fi

echo "== fuzzing for ${secs}s"
set +e
"$out/fuzz_spqr_file" "$out/corpus" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/crashes/" -print_final_stats=1 "$@" 2>&1 | tee "$out/fuzz.log" | grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|SUMMARY|stat::" 
rc=${PIPESTATUS[0]}
set -e
n=$(find "$out/crashes" -type f | wc -l)
echo "== libFuzzer exit $rc; $n crashing input(s) in $out/crashes (log: $out/fuzz.log)"
exit "$rc"
