#!/usr/bin/env bash
# CLI behaviour of `spqr quantize-matrix`: exit codes, one-line errors, no
# partial outputs, metadata present. The numeric comparison with the
# PyTorch reference is tests/test_quantize_matrix_file.c.
# usage: bash cli_quantize_matrix.sh <spqr binary> <repo root>
set -u
SPQR=${1:?spqr binary}
ROOT=${2:?repo root}
FIX="$ROOT/tests/fixtures/layer_cli.safetensors"
T=$(mktemp -d "${TMPDIR:-/tmp}/spqr_cli_qm.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# ---- byte-level writer for crafted inputs (no python in tests) ----------
u64le() { # n -> 8 little-endian bytes
    local n=$1 i
    for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf '%03o' $(((n >> (8 * i)) & 255)))"; done
}
u32le() {
    local n=$1 i
    for i in 0 1 2 3; do printf "\\$(printf '%03o' $(((n >> (8 * i)) & 255)))"; done
}
f32() { # integer k (|k| < 2^23) -> its fp32 bits, little-endian; "nan" -> quiet NaN
    local k=$1 s=0 e=0 m
    if [ "$k" = nan ]; then u32le $((0x7fc00000)); return; fi
    if [ "$k" -eq 0 ]; then u32le 0; return; fi
    if [ "$k" -lt 0 ]; then s=1; k=$((-k)); fi
    while [ $((k >> (e + 1))) -gt 0 ]; do e=$((e + 1)); done
    m=$(((k - (1 << e)) << (23 - e)))
    u32le $(((s << 31) | ((127 + e) << 23) | m))
}
mkst() { # file json datafile
    { u64le ${#2}; printf '%s' "$2"; cat "$3"; } >"$1"
}
# weight [R,C] with varied integer values (value list pos mod 11 - 5, never all equal in a row)
weight_data() {
    local r c
    for ((r = 0; r < $1; r++)); do for ((c = 0; c < $2; c++)); do f32 $((((r * 7 + c * 3) % 11) - 5)); done; done
}
# diagonal-dominant SPD matrix [N,N]: N+1 on the diagonal, 1 elsewhere
# (negated when $2 = neg: negative definite, fails even after damping)
hess_data() {
    local i j s=1
    [ "${2:-}" = neg ] && s=-1
    for ((i = 0; i < $1; i++)); do for ((j = 0; j < $1; j++)); do
        if [ $i -eq $j ]; then f32 $((s * ($1 + 1))); else f32 $s; fi
    done; done
}
tensor_json() { # name dtype r c offset -> json fragment; prints end offset in global END
    local n=$(($3 * $4 * 4))
    END=$(($5 + n))
    printf '"%s":{"dtype":"%s","shape":[%d,%d],"data_offsets":[%d,%d]}' "$1" "$2" "$3" "$4" "$5" "$END"
}
# crafted file with weight [WR,WC] and hessian [HR,HC]
craft() { # file WR WC HR HC [nan|neg]
    local f=$1 wr=$2 wc=$3 hr=$4 hc=$5 j1 j2
    j1=$(tensor_json weight F32 "$wr" "$wc" 0)
    j2=$(tensor_json hessian F32 "$hr" "$hc" $((wr * wc * 4)))
    { weight_data "$wr" "$wc"; } >"$T/data.bin"
    if [ "${6:-}" = nan ]; then # replace the 6th value by NaN
        { head -c 20 "$T/data.bin"; f32 nan; tail -c +25 "$T/data.bin"; } >"$T/data2.bin"
        mv "$T/data2.bin" "$T/data.bin"
    fi
    if [ "$hr" -eq "$hc" ]; then hess_data "$hr" "${6:-}" >>"$T/data.bin"
    else for ((i = 0; i < hr * hc; i++)); do f32 1; done >>"$T/data.bin"; fi
    mkst "$f" "{$j1,$j2}" "$T/data.bin"
}

# ---- checks ---------------------------------------------------------------
no_leftovers() { # dir: no temporary files of the atomic writer
    if ls -a "$1" | grep -q '\.tmp\.'; then bad "temporary file left in $1"; else ok; fi
}
# expect_fail NAME OUTFILE ARGS...: non-zero exit, exactly one stderr line
# starting with "spqr:", OUTFILE absent afterwards
expect_fail() {
    local name=$1 out=$2
    shift 2
    "$SPQR" quantize-matrix "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    local lines
    lines=$(wc -l <"$T/stderr")
    if [ $rc -eq 0 ]; then bad "$name: exit 0"; else ok; fi
    if [ $rc -ge 128 ]; then bad "$name: crashed (rc $rc)"; fi
    if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines: $(cat "$T/stderr")"; else ok; fi
    if ! head -n1 "$T/stderr" | grep -q '^spqr:'; then bad "$name: stderr not 'spqr:': $(cat "$T/stderr")"; else ok; fi
    if [ -n "$out" ] && [ -e "$out" ]; then bad "$name: output $out exists"; else ok; fi
    echo "  $name -> rc $rc: $(cat "$T/stderr")"
    LAST_RC=$rc
}

# ---- help -----------------------------------------------------------------
"$SPQR" quantize-matrix --help >"$T/help" 2>&1 && ok || bad "--help exit code"
for flag in --wbits --groupsize --qq-scale-bits --qq-zero-bits --qq-groupsize --outlier-threshold \
    --simplified-outliers --percdamp --blocksize --perm --round-zero --sym --rtn --threads --output --help; do
    grep -q -- "$flag" "$T/help" && ok || bad "help does not mention $flag"
done
[ "$(grep -c 'default' "$T/help")" -ge 13 ] && ok || bad "help lacks defaults"
"$SPQR" --help | grep -q quantize-matrix && ok || bad "spqr --help does not list quantize-matrix"

# ---- happy path on the reference fixture -----------------------------------
if [ ! -f "$FIX" ]; then
    bad "fixture $FIX missing"
else
    OUT="$T/out.safetensors"
    if "$SPQR" quantize-matrix "$FIX" -o "$OUT" -t 2 >"$T/stdout" 2>"$T/stderr"; then ok; else bad "happy path failed: $(cat "$T/stderr")"; fi
    [ -s "$T/stderr" ] && bad "happy path wrote to stderr: $(cat "$T/stderr")" || ok
    [ -f "$OUT" ] && ok || bad "no output file"
    for word in "bits per weight" formula measured outliers "rel. H-error" time; do
        grep -q "$word" "$T/stdout" && ok || bad "summary lacks '$word'"
    done
    # metadata and tensors in the JSON header (first 8 bytes are the length)
    for key in wbits groupsize qq_scale_bits qq_zero_bits qq_groupsize outlier_threshold percdamp perm \
        avg_bits_formula avg_bits_measured outlier_count rel_hessian_error seconds; do
        grep -a -q "\"$key\":\"" "$OUT" && ok || bad "metadata key $key missing"
    done
    grep -a -q '"weight":{"dtype":"F32","shape":\[24,40\]' "$OUT" && ok || bad "weight tensor header"
    grep -a -q '"outlier_mask":{"dtype":"U8","shape":\[24,40\]' "$OUT" && ok || bad "outlier_mask tensor header"
    grep -a -q '"perm":"act_order"' "$OUT" && ok || bad "default perm not act_order"
    # 8 + header + 24*40*(4+1) bytes
    hl=$(od -An -t u8 -N 8 "$OUT" | tr -d ' ')
    [ "$(stat -c %s "$OUT")" -eq $((8 + hl + 24 * 40 * 5)) ] && ok || bad "output size"
    [ $(((8 + hl) % 8)) -eq 0 ] && ok || bad "data section not 8-aligned"
    no_leftovers "$T"

    # knobs reach the metadata; --flag=value form works
    "$SPQR" quantize-matrix "$FIX" -o "$T/k.safetensors" --wbits=4 --groupsize 8 --qq-scale-bits 0 --qq-zero-bits 0 \
        --outlier-threshold off --perm identity --rtn --percdamp 0.01 --blocksize 7 --sym >/dev/null 2>"$T/stderr" \
        && ok || bad "knobs run failed: $(cat "$T/stderr")"
    for kv in '"wbits":"4"' '"groupsize":"8"' '"qq_scale_bits":"0"' '"outlier_threshold":"inf"' '"perm":"identity"' \
        '"gptq":"0"' '"sym":"1"' '"blocksize":"7"' '"outlier_count":"0"'; do
        grep -a -q "$kv" "$T/k.safetensors" && ok || bad "knob metadata $kv missing"
    done

    # an existing destination is kept on failure and replaced on success
    printf 'OLD' >"$T/keep.safetensors"
    expect_fail "bad flag keeps old output" "" "$FIX" -o "$T/keep.safetensors" --wbits 9
    [ "$(cat "$T/keep.safetensors")" = OLD ] && ok || bad "existing output changed by a failed run"
    craft "$T/nan.safetensors" 4 8 8 8 nan
    expect_fail "NaN keeps old output" "" "$T/nan.safetensors" -o "$T/keep.safetensors"
    [ "$(cat "$T/keep.safetensors")" = OLD ] && ok || bad "existing output changed by a failed run"
    # OLD is not an output of quantize-matrix: replaced only with --force (docs/safety.md)
    "$SPQR" quantize-matrix "$FIX" -o "$T/keep.safetensors" >/dev/null 2>&1 && bad "a foreign file was replaced" || ok
    [ "$(cat "$T/keep.safetensors")" = OLD ] && ok || bad "existing foreign output changed without --force"
    "$SPQR" quantize-matrix "$FIX" -o "$T/keep.safetensors" --force >/dev/null 2>&1 && ok || bad "replace run failed"
    grep -a -q avg_bits_formula "$T/keep.safetensors" && ok || bad "existing output not replaced"
    "$SPQR" quantize-matrix "$FIX" -o "$T/keep.safetensors" >/dev/null 2>&1 && ok || bad "our own output not replaced"

    # truncated input
    head -c 1000 "$FIX" >"$T/trunc.safetensors"
    expect_fail "truncated input" "$T/o_trunc.safetensors" "$T/trunc.safetensors" -o "$T/o_trunc.safetensors"
fi

# ---- crafted inputs -----------------------------------------------------------
craft "$T/good.safetensors" 4 8 8 8
if "$SPQR" quantize-matrix "$T/good.safetensors" -o "$T/o_good.safetensors" >/dev/null 2>"$T/stderr"; then ok
else bad "control input failed: $(cat "$T/stderr")"; fi
G="$T/good.safetensors"
craft "$T/nonsquare.safetensors" 4 8 8 6
craft "$T/mismatch.safetensors" 4 8 4 4
craft "$T/negdef.safetensors" 4 8 8 8 neg
O="$T/o.safetensors"

expect_fail "missing input" "$O" "$T/nope.safetensors" -o "$O"
expect_fail "missing output dir" "$T/nodir/o.safetensors" "$G" -o "$T/nodir/o.safetensors"
[ -d "$T/nodir" ] && bad "output dir created" || ok
expect_fail "output is a directory" "" "$G" -o "$T"
expect_fail "non-square hessian" "$O" "$T/nonsquare.safetensors" -o "$O"
expect_fail "hessian size != in" "$O" "$T/mismatch.safetensors" -o "$O"
expect_fail "NaN in weight" "$O" "$T/nan.safetensors" -o "$O"
expect_fail "hessian not positive definite" "$O" "$T/negdef.safetensors" -o "$O"
expect_fail "wbits 0" "$O" "$G" -o "$O" --wbits 0
[ "$LAST_RC" -eq 2 ] && ok || bad "usage error should exit 2"
expect_fail "wbits 9" "$O" "$G" -o "$O" --wbits 9
expect_fail "groupsize -1" "$O" "$G" -o "$O" --groupsize -1
expect_fail "wbits abc" "$O" "$G" -o "$O" --wbits abc
expect_fail "wbits 4x" "$O" "$G" -o "$O" --wbits 4x
expect_fail "wbits empty" "$O" "$G" -o "$O" --wbits ""
expect_fail "wbits= empty" "$O" "$G" -o "$O" --wbits=
expect_fail "wbits missing value" "$O" "$G" -o "$O" --wbits
expect_fail "percdamp nan" "$O" "$G" -o "$O" --percdamp nan
expect_fail "percdamp negative" "$O" "$G" -o "$O" --percdamp -1
expect_fail "outlier threshold 0" "$O" "$G" -o "$O" --outlier-threshold 0
expect_fail "outlier threshold junk" "$O" "$G" -o "$O" --outlier-threshold 0.2.3
expect_fail "perm bogus" "$O" "$G" -o "$O" --perm random
expect_fail "threads junk" "$O" "$G" -o "$O" -t two
expect_fail "qq bits 9" "$O" "$G" -o "$O" --qq-scale-bits 9
expect_fail "qq groupsize 0" "$O" "$G" -o "$O" --qq-groupsize 0
expect_fail "blocksize 0" "$O" "$G" -o "$O" --blocksize 0
expect_fail "wbits overflow" "$O" "$G" -o "$O" --wbits 99999999999999999999999
expect_fail "unknown flag" "$O" "$G" -o "$O" --frobnicate
[ "$LAST_RC" -eq 2 ] && ok || bad "unknown flag should exit 2"
expect_fail "missing -o" "" "$G"
expect_fail "-o without value" "" "$G" -o
expect_fail "no input" "$O" -o "$O"
expect_fail "two inputs" "$O" "$G" "$G" -o "$O"
# structurally wrong inputs
{ u64le 2; printf '{}'; } >"$T/empty.safetensors"
expect_fail "no tensors" "$O" "$T/empty.safetensors" -o "$O"
j='{"weight":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"hessian":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}'
{ for i in 1 2 3 4 5 6 7 8; do f32 1; done; } >"$T/d.bin"
mkst "$T/i32.safetensors" "$j" "$T/d.bin"
expect_fail "I32 weight" "$O" "$T/i32.safetensors" -o "$O"
j='{"weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"hessian":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}'
mkst "$T/w1d.safetensors" "$j" "$T/d.bin"
expect_fail "1-D weight" "$O" "$T/w1d.safetensors" -o "$O"
j='{"weight":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"hessian":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}'
mkst "$T/w0.safetensors" "$j" "$T/d.bin"
expect_fail "empty weight" "$O" "$T/w0.safetensors" -o "$O"
printf 'garbage that is not a safetensors file at all' >"$T/garbage.safetensors"
expect_fail "garbage input" "$O" "$T/garbage.safetensors" -o "$O"
no_leftovers "$T"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
