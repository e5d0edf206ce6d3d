#!/usr/bin/env bash
# Model-level speed (issue 5): prompt and decode tokens/s of fp16 models
# and their .spqr versions, next to the read-bandwidth bound, with
# `spqr bench --json`:
#   1. models/default (fp16) vs a 3.6bit SpQR quantization of it,
#   2. the synthetic Llama-7B shape: fp16 HF directory vs a random packed
#      .spqr of the same shapes (w3, beta1 = beta2 = 16, 1 % outliers).
# Missing inputs are generated first (the 7B fp16 directory is 13.5 GB and
# takes a few minutes to write; the 7B .spqr 3.7 GB, ~10 s). Results go to
# bench/results/model.md by hand; the JSON of each run stays in $OUT.
#
# usage: bench/model_speed.sh
# env:   SPQR (binary, default build/spqr), GEN (default: gen_synthetic_llama
#        next to SPQR), THREADS (2), OUT (/tmp/spqr_model_speed),
#        DEFAULT_SPQR (/tmp/bench_default.spqr), SYN7B (/tmp/syn7b),
#        SYN7B_SPQR (/tmp/syn7b.spqr), DEFAULT_ARGS ("-p 64 -n 16 -r 3"),
#        SYN7B_ARGS ("-p 16 -n 8 -r 2"), SKIP_7B (1: only the default model)
set -euo pipefail
cd "$(dirname "$0")/.."
SPQR=${SPQR:-build/spqr}
GEN=${GEN:-$(dirname "$SPQR")/gen_synthetic_llama}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/spqr_model_speed}
DEFAULT_SPQR=${DEFAULT_SPQR:-/tmp/bench_default.spqr}
SYN7B=${SYN7B:-/tmp/syn7b}
SYN7B_SPQR=${SYN7B_SPQR:-/tmp/syn7b.spqr}
DEFAULT_ARGS=${DEFAULT_ARGS:--p 64 -n 16 -r 3}
SYN7B_ARGS=${SYN7B_ARGS:--p 16 -n 8 -r 2}
SKIP_7B=${SKIP_7B:-0}
# passive: spinning OpenMP barriers are very slow when the box is shared (docs/model.md)
export OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"

if [ ! -s "$DEFAULT_SPQR" ]; then
    echo "quantizing models/default -> $DEFAULT_SPQR" >&2
    nice -n 10 "$SPQR" quantize models/default -o "$DEFAULT_SPQR" --calib data/calib.txt --recipe paper-w3 \
        --nsamples 32 --seqlen 256 -t "$THREADS" -q >/dev/null
fi
if [ "$SKIP_7B" != 1 ]; then
    [ -s "$SYN7B/model.safetensors" ] || nice -n 10 "$GEN" "$SYN7B"
    [ -s "$SYN7B_SPQR" ] || nice -n 10 "$GEN" --spqr "$SYN7B_SPQR"
fi

table() { # JSON file -> markdown table on stdout
    jq -r '
      def fx(n): (. * pow(10; n) | round) as $v | ($v | fabs | tostring) as $s
        | (if ($s | length) <= n then ("0" * (n + 1 - ($s | length))) + $s else $s end) as $p
        | (if $v < 0 then "-" else "" end) + $p[0:($p | length) - n] + (if n > 0 then "." + $p[($p | length) - n:] else "" end);
      "read bandwidth \(.bandwidth_gbps | fx(2)) GB/s, \(.threads) threads, mean ± sd of \(.reps) reps\n",
      "| model | kind | weights streamed/token | bits/param | kernel | load s | prompt tok/s | decode tok/s | decode bound | decode/bound | speedup prompt | speedup decode |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
      (.models[] | "| \(.path) | \(.kind) | \(.weight_bytes / 1e6 | fx(1)) MB | \(.bits_per_param | fx(3)) | \(.kernel_path) | \(.load_seconds | fx(1)) | pp\(.prompt_tokens): \(.prompt_tps | fx(2)) ± \(.prompt_tps_sd | fx(2)) | tg\(.decode_tokens): \(.decode_tps | fx(2)) ± \(.decode_tps_sd | fx(2)) | \(.decode_bound_tps | fx(2)) | \(.decode_tps / .decode_bound_tps * 100 | fx(0)) % | \(.speedup_prompt | fx(2))x | \(.speedup_decode | fx(2))x |")' "$1"
}

run() { # name, then spqr bench arguments
    local name=$1; shift
    echo "== $name: spqr bench $* -t $THREADS --json" >&2
    # shellcheck disable=SC2086
    nice -n 10 "$SPQR" bench "$@" -t "$THREADS" --json >"$OUT/$name.json"
    echo "### $name"
    echo
    table "$OUT/$name.json"
    echo
}

echo "uptime before: $(uptime)" >&2
# shellcheck disable=SC2086
run default models/default "$DEFAULT_SPQR" $DEFAULT_ARGS
# shellcheck disable=SC2086
[ "$SKIP_7B" = 1 ] || run syn7b "$SYN7B" "$SYN7B_SPQR" $SYN7B_ARGS
echo "uptime after: $(uptime)" >&2
