#!/bin/bash
# Every numeric quantization knob has one range (src/quant/params.c): absurd
# values (0, negative, past the bound, 2^31-1, 2^64+, NaN, inf, junk) make
# `spqr quantize-matrix` and `spqr quantize` exit 2 with one line naming the
# flag and the range, before any work; the bounds themselves work.
# Usage: bash cli_knobs.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
FIX=$ROOT/tests/fixtures/layer_cli.safetensors
MODEL=$ROOT/tests/fixtures/tiny_gqa
TMP=$(mktemp -d /tmp/spqr_cli_knobs.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh"
head -c 4000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"

# flag, the range its messages must show, then the bad values
KNOBS=(
    "--wbits|[2, 8]|0 1 9 -3 2147483647 99999999999999999999 nan abc 3.5"
    "--groupsize|[0, 65536]|-1 65537 2147483647 -2147483648 nan 1e3"
    "--qq-scale-bits|[0, 8]|-1 9 2147483647 nan"
    "--qq-zero-bits|[0, 8]|-1 9 2147483647 nan"
    "--qq-groupsize|[1, 65536]|0 -1 65537 2147483647 4294967297 nan"
    "--blocksize|[1, 65536]|0 -1 65537 2147483647 nan"
    "--outlier-threshold|(0, 1e+06] or off|0 -1 1e7 1e30 nan -inf 1e-50"
    "--percdamp|[0, 1e+06]|-1 -0.5 1e7 1e300 nan inf -inf"
)

# cmd description args...: exit 2, exactly one stderr line "spqr: CMD: FLAG ... RANGE", nothing written
expect_knob_error() {
    local cmd=$1 what=$2 flag=$3 range=$4; shift 4
    expect_rc 2 "$cmd $what" "$SPQR" "$@"
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^spqr: $cmd: $flag: " "$TMP/err" && grep -qF -- "$range" "$TMP/err"
    then ok "$cmd $what: one line naming $flag and $range"
    else bad "$cmd $what: want one line naming $flag and $range, got: $(head -c 300 "$TMP/err")"; fi
    [ ! -e "$TMP/o.safetensors" ] && [ ! -e "$TMP/o.spqr" ] || bad "$cmd $what: an output was written"
    rm -rf "$TMP/o.safetensors" "$TMP/o.spqr" "$TMP/o.spqr.partial"
}

"$SPQR" quantize-matrix --help >"$TMP/help" 2>&1 || bad "quantize-matrix --help failed"
for k in "${KNOBS[@]}"; do
    IFS='|' read -r flag range values <<<"$k"
    # --help shows the same range as the errors: both come from the one table
    grep -A1 -- "^  $flag " "$TMP/help" | grep -qF -- "range $range" && ok "--help: $flag $range" \
        || bad "--help does not show $flag range $range"
    for v in $values; do
        expect_knob_error quantize-matrix "$flag $v" "$flag" "$range" \
            quantize-matrix "$FIX" -o "$TMP/o.safetensors" "$flag" "$v"
        expect_knob_error quantize-matrix "$flag=$v" "$flag" "$range" \
            quantize-matrix "$FIX" -o "$TMP/o.safetensors" "$flag=$v"
        expect_knob_error quantize "$flag $v" "$flag" "$range" \
            quantize "$MODEL" -o "$TMP/o.spqr" --calib "$TMP/calib.txt" --nsamples 2 --seqlen 16 -q "$flag" "$v"
    done
    expect_knob_error quantize-matrix "$flag empty" "$flag" "$range" \
        quantize-matrix "$FIX" -o "$TMP/o.safetensors" "$flag="
done

# the bounds are valid and give a real result (issue 11: 2^31-1 gave "rel. H-error: 0")
nonzero_error() {
    grep -Eq 'rel\. H-error: +[0-9]*\.[0-9]*[1-9]' "$TMP/out" && ok "$1: a non-zero error" \
        || bad "$1: no non-zero rel. H-error: $(cat "$TMP/out")"
}
expect_rc 0 "quantize-matrix at the upper bounds" "$SPQR" quantize-matrix "$FIX" -o "$TMP/hi.safetensors" \
    --wbits 8 --groupsize 65536 --qq-scale-bits 8 --qq-zero-bits 8 --qq-groupsize 65536 --blocksize 65536 \
    --outlier-threshold 1e6 --percdamp 1e6
nonzero_error "upper bounds"
expect_rc 0 "quantize-matrix at the lower bounds" "$SPQR" quantize-matrix "$FIX" -o "$TMP/lo.safetensors" \
    --wbits 2 --groupsize 0 --qq-scale-bits 0 --qq-zero-bits 0 --qq-groupsize 1 --blocksize 1 --percdamp 0.01 \
    --outlier-threshold off
nonzero_error "lower bounds"
expect_rc 0 "quantize at the largest groups" "$SPQR" quantize "$MODEL" -o "$TMP/big.spqr" --calib "$TMP/calib.txt" \
    --nsamples 2 --seqlen 16 -t 2 -q --groupsize 65536 --qq-groupsize 65536 --blocksize 65536

echo "$fails failed"
[ "$fails" -eq 0 ]
