#!/bin/bash
# Results that used to be misleading or silently wrong: a perplexity window
# that scores nothing, non-finite weights, and model paths that are not a
# model (each must give one line naming the real problem and exit non-zero).
# Usage: bash cli_messages.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
FIX=$ROOT/tests/fixtures
MODEL=$FIX/tiny_gqa
TMP=$(mktemp -d /tmp/spqr_cli_msg.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh" || exit 1 # ok, bad, expect_rc; counts $fails
says() { # description needle [absent]: stderr is one "spqr: " line containing needle (and not absent)
    local what=$1 needle=$2 absent=${3:-}
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: ' "$TMP/err" && grep -qF -- "$needle" "$TMP/err" \
        && { [ -z "$absent" ] || ! grep -qF -- "$absent" "$TMP/err"; }; then ok "$what: says '$needle'"
    else bad "$what: want one line with '$needle'${absent:+ and without '$absent'}: $(head -c 400 "$TMP/err")"; fi
}
head -c 3000 "$ROOT/data/calib.txt" >"$TMP/text.txt"

# 1. perplexity: a window that scores no token is refused, not printed as NaN
expect_rc 1 "llamacpp -c 2" "$SPQR" perplexity "$MODEL" -f "$TMP/text.txt" --protocol llamacpp -c 2 -t 2
says "llamacpp -c 2" "-c 2 scores no token"
grep -qi 'nan' "$TMP/out" && bad "llamacpp -c 2 printed NaN: $(head -c 200 "$TMP/out")" || ok "llamacpp -c 2: no NaN printed"
expect_rc 0 "llamacpp -c 3 scores one token per window" "$SPQR" perplexity "$MODEL" -f "$TMP/text.txt" \
    --protocol llamacpp -c 3 --chunks 4 --json -t 2
grep -q '"tokens": 4,' "$TMP/out" && ! grep -qi 'nan' "$TMP/out" && ok "llamacpp -c 3: 4 tokens, finite" \
    || bad "llamacpp -c 3: $(cat "$TMP/out")"

# 2. non-finite weights: refused at load, naming the tensor (not a NaN
#    perplexity, not a NaN Hessian blamed on q_proj)
poison() { # dir tensor index value: sets one F32 element of a copy of the fixture
    rm -rf "$1" && cp -r "$MODEL" "$1"
    /usr/bin/python3 - "$1/model.safetensors" "$2" "$3" "$4" <<'PY'
import json, struct, sys
path, name, idx, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    assert t["dtype"] == "F32"
    f.seek(8 + n + t["data_offsets"][0] + 4 * idx)
    f.write(struct.pack("<f", val))
PY
}
poison "$TMP/nan" model.embed_tokens.weight 77 nan
expect_rc 1 "perplexity, NaN in the embedding" "$SPQR" perplexity "$TMP/nan" -f "$TMP/text.txt" -c 32 -t 2
says "perplexity NaN" "tensor model.embed_tokens.weight holds NaN at element 77 (row 1, column 5)"
grep -q 'PPL' "$TMP/out" && bad "NaN model printed a PPL" || ok "NaN model: no PPL printed"
expect_rc 1 "quantize, NaN in the embedding" "$SPQR" quantize "$TMP/nan" -o "$TMP/q.spqr" --calib "$TMP/text.txt" \
    --nsamples 2 --seqlen 32 -t 2 -q
says "quantize NaN" "model.embed_tokens.weight holds NaN" "q_proj"
expect_rc 1 "generate, NaN in the embedding" "$SPQR" generate "$TMP/nan" -p hi --temp 0
says "generate NaN" "model.embed_tokens.weight holds NaN"
poison "$TMP/inf" model.layers.1.mlp.down_proj.weight 0 -inf
expect_rc 1 "perplexity, -Inf in a layer" "$SPQR" perplexity "$TMP/inf" -f "$TMP/text.txt" -c 32 -t 2
says "perplexity -Inf" "tensor model.layers.1.mlp.down_proj.weight holds -Inf at element 0"

# 3. model paths that are not a model
expect_rc 1 "generate -c beyond the model" "$SPQR" generate "$MODEL" -p hi -c 300 --temp 0
says "generate -c 300" "-c 300 exceeds the model's max_position_embeddings 256" "prompt of"
expect_rc 1 "perplexity /dev/zero" "$SPQR" perplexity /dev/zero -f "$TMP/text.txt"
says "perplexity /dev/zero" "/dev/zero is a character device, not a model" "model directory"
expect_rc 1 "generate missing.spqr" "$SPQR" generate "$TMP/missing.spqr" -p hi
says "generate missing.spqr" "missing.spqr does not exist" "model directory"
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000junk' >"$TMP/m.gguf"
for cmd in generate perplexity bench; do
    args=(-p hi); [ $cmd = perplexity ] && args=(-f "$TMP/text.txt"); [ $cmd = bench ] && args=()
    expect_rc 1 "$cmd on a GGUF file" "$SPQR" $cmd "$TMP/m.gguf" "${args[@]}"
    says "$cmd GGUF" "m.gguf is a GGUF file (llama.cpp); spqr runs a Hugging Face checkpoint directory or a .spqr file"
done
expect_rc 1 "generate on a bare model.safetensors" "$SPQR" generate "$MODEL/model.safetensors" -p hi
says "bare safetensors" "is a bare safetensors file: pass the directory that holds it with config.json and tokenizer.json"
expect_rc 1 "quantize on a GGUF file" "$SPQR" quantize "$TMP/m.gguf" -o "$TMP/q.spqr" --calib "$TMP/text.txt"
says "quantize GGUF" "is a GGUF file"
printf 'hello' >"$TMP/junk.spqr"
expect_rc 1 "perplexity on a junk .spqr" "$SPQR" perplexity "$TMP/junk.spqr" -f "$TMP/text.txt"
says "junk .spqr" "junk.spqr is neither a .spqr file (no SPQRMDL magic) nor a directory"

[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
exit $((fails > 0))
