#!/bin/bash
# spqr export --to hf-fp16 / hf-bf16: the exported directory loads with the
# HF loader and gives the .spqr's perplexity (exact fp32 kernels on both
# sides, so only the 16-bit rounding of the dequantized weights differs);
# sharding, the HF layout (checked by an independent Python reader), and
# the output rules of docs/safety.md.
# Usage: bash cli_export.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
MODEL=$ROOT/tests/fixtures/tiny_gqa
TMP=$(mktemp -d /tmp/spqr_cli_export.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive SPQR_KERNEL=exact
. "$ROOT/tests/lib.sh"
one_line_error() {
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: export: ' "$TMP/err"; then ok "$1: one-line error"
    else bad "$1: stderr is not one error line: $(head -c 300 "$TMP/err")"; fi
}
ppl() { "$SPQR" perplexity "$1" -f "$ROOT/tests/fixtures/model_text.txt" -c 32 -t 2 --json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["ppl"]))'; }
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
expect_rc 0 "quantize the fixture" "$SPQR" quantize "$MODEL" -o "$TMP/q.spqr" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -t 2 -q

# 1. fp16: one shard, plain HF layout, same perplexity
expect_rc 0 "export hf-fp16" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/fp16"
[ -f "$TMP/fp16/model.safetensors" ] && [ -f "$TMP/fp16/tokenizer.json" ] && [ -f "$TMP/fp16/config.json" ] &&
    ok "fp16 files present" || bad "fp16 files: $(ls "$TMP/fp16")"
P_Q=$(ppl "$TMP/q.spqr"); P_F=$(ppl "$TMP/fp16")
/usr/bin/python3 -c "import sys; q,f=$P_Q,$P_F; sys.exit(not abs(f-q)/q < 1e-3)" &&
    ok "hf-fp16 perplexity $P_F vs .spqr $P_Q (< 1e-3 relative)" || bad "hf-fp16 perplexity $P_F vs .spqr $P_Q"
# The independent reader: the header is valid safetensors, all F16, dense
# tensors equal the original checkpoint's after fp16 rounding, quantized
# linears stay close to the originals, config has no quantization_config.
/usr/bin/python3 "$ROOT/tests/check_hf_export.py" "$TMP/fp16" "$MODEL" F16 >"$TMP/py" 2>&1 &&
    ok "independent reader: $(tail -1 "$TMP/py")" || bad "independent reader: $(tail -3 "$TMP/py")"

# 2. sharded: several shards + index, the same perplexity exactly
expect_rc 0 "export sharded" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/shard" --max-shard-size 20KB
N=$(ls "$TMP/shard"/model-*-of-*.safetensors 2>/dev/null | wc -l)
[ "$N" -gt 1 ] && [ -f "$TMP/shard/model.safetensors.index.json" ] && [ ! -e "$TMP/shard/model.safetensors" ] &&
    ok "$N shards and an index" || bad "sharding: $(ls "$TMP/shard")"
P_S=$(ppl "$TMP/shard")
[ "$P_S" = "$P_F" ] && ok "sharded perplexity equals the single file's" || bad "sharded $P_S vs $P_F"
/usr/bin/python3 "$ROOT/tests/check_hf_export.py" "$TMP/shard" "$MODEL" F16 >"$TMP/py" 2>&1 &&
    ok "independent reader (sharded)" || bad "independent reader (sharded): $(tail -3 "$TMP/py")"

# 3. bf16
expect_rc 0 "export hf-bf16" "$SPQR" export "$TMP/q.spqr" --to hf-bf16 "$TMP/bf16"
/usr/bin/python3 "$ROOT/tests/check_hf_export.py" "$TMP/bf16" "$MODEL" BF16 >"$TMP/py" 2>&1 &&
    ok "independent reader (bf16)" || bad "independent reader (bf16): $(tail -3 "$TMP/py")"
P_B=$(ppl "$TMP/bf16")
/usr/bin/python3 -c "import sys; q,f=$P_Q,$P_B; sys.exit(not abs(f-q)/q < 1e-2)" &&
    ok "hf-bf16 perplexity $P_B vs .spqr $P_Q (< 1e-2 relative)" || bad "hf-bf16 perplexity $P_B vs .spqr $P_Q"

# 4. families: Phi-3's fused qkv_proj/gate_up_proj come back fused (its
# config names Phi3ForCausalLM, which has no q_proj); a tied Gemma 2 quantized
# with a head of its own says tie_word_embeddings false (its config omits the
# field and the family defaults to tied, which would drop the head)
FAM=$ROOT/tests/fixtures/families
for f in phi3 gemma2; do
    expect_rc 0 "$f: quantize (two tables)" "$SPQR" quantize "$FAM/$f" -o "$TMP/$f.spqr" --calib "$TMP/calib.txt" \
        --nsamples 4 --seqlen 32 -t 2 -q --recipe gptq4 --tied-two-tables
    expect_rc 0 "$f: export hf-fp16" "$SPQR" export "$TMP/$f.spqr" --to hf-fp16 "$TMP/$f-fp16"
    P_Q=$(ppl "$TMP/$f.spqr"); P_F=$(ppl "$TMP/$f-fp16")
    /usr/bin/python3 -c "import sys; q,f=$P_Q,${P_F:-0}; sys.exit(not abs(f-q)/q < 1e-3)" &&
        ok "$f: hf-fp16 perplexity $P_F vs .spqr $P_Q (< 1e-3 relative)" || bad "$f: hf-fp16 perplexity '$P_F' vs .spqr $P_Q"
done
/usr/bin/python3 "$ROOT/tests/check_hf_export.py" "$TMP/phi3-fp16" "$FAM/phi3" F16 >"$TMP/py" 2>&1 &&
    ok "phi3: independent reader finds the original's fused names: $(tail -1 "$TMP/py")" ||
    bad "phi3: independent reader: $(tail -3 "$TMP/py")"
/usr/bin/python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["tie_word_embeddings"] is not False)' \
    "$TMP/gemma2-fp16/config.json" && ok "gemma2: exported config unties the head" || bad "gemma2: exported config ties the head"

# 5. bad input and the output rules
expect_rc 2 "no --to" "$SPQR" export "$TMP/q.spqr" "$TMP/x"; one_line_error "no --to"
expect_rc 2 "unknown format" "$SPQR" export "$TMP/q.spqr" --to gguf "$TMP/x"; one_line_error "unknown format"
expect_rc 2 "bad shard size" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/x" --max-shard-size 0; one_line_error "shard 0"
expect_rc 1 "input not a .spqr" "$SPQR" export "$MODEL/config.json" --to hf-fp16 "$TMP/x"; one_line_error "input not .spqr"
[ ! -e "$TMP/x" ] && ok "a refused input creates no directory" || bad "$TMP/x was created"
expect_rc 1 "non-empty OUT_DIR" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/fp16"; one_line_error "non-empty OUT_DIR"
grep -q -- '--force' "$TMP/err" && ok "the error names --force" || bad "non-empty error: $(cat "$TMP/err")"
: >"$TMP/afile"
expect_rc 1 "OUT_DIR is a file" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/afile"; one_line_error "OUT_DIR is a file"
expect_rc 1 "OUT_DIR's parent missing" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/no/such"; one_line_error "parent missing"
expect_rc 0 "--force into a non-empty OUT_DIR" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/fp16" --force
# a re-export with --force removes the earlier checkpoint's files first: a leftover
# model.safetensors would be loaded instead of the new shards' index; other files stay
echo "keep me" >"$TMP/fp16/NOTES.txt" && echo '{}' >"$TMP/fp16/generation_config.json"
expect_rc 0 "--force re-export as shards" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/fp16" --force --max-shard-size 20KB
[ ! -e "$TMP/fp16/model.safetensors" ] && [ ! -e "$TMP/fp16/generation_config.json" ] && [ -s "$TMP/fp16/model.safetensors.index.json" ] &&
    ok "the earlier model.safetensors and generation_config.json are gone" || bad "stale files: $(ls "$TMP/fp16")"
[ "$(cat "$TMP/fp16/NOTES.txt")" = "keep me" ] && ok "an unrelated file is kept" || bad "NOTES.txt changed"
expect_rc 0 "--force back to one file" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/fp16" --force
ls "$TMP/fp16" | grep -q -- '-of-\|index' && bad "stale shards: $(ls "$TMP/fp16")" || ok "the shards and index are gone"
# the input sitting in OUT_DIR under an output's name is never replaced, even with --force
mkdir "$TMP/trap" && cp "$TMP/q.spqr" "$TMP/trap/model.safetensors"
SUM=$(md5sum <"$TMP/trap/model.safetensors")
expect_rc 1 "input inside OUT_DIR as model.safetensors" "$SPQR" export "$TMP/trap/model.safetensors" --to hf-fp16 "$TMP/trap" --force
one_line_error "input in OUT_DIR"
[ "$(md5sum <"$TMP/trap/model.safetensors")" = "$SUM" ] && ok "the input is untouched" || bad "the input was changed"
# ... nor under a side file's name, and then nothing is written first (the weights were, before)
for side in config.json tokenizer.json; do
    rm -rf "$TMP/trap2" && mkdir "$TMP/trap2" && cp "$TMP/q.spqr" "$TMP/trap2/$side"
    expect_rc 1 "input inside OUT_DIR as $side" "$SPQR" export "$TMP/trap2/$side" --to hf-fp16 "$TMP/trap2" --force
    one_line_error "input in OUT_DIR as $side"
    [ "$(ls "$TMP/trap2")" = "$side" ] && ok "nothing written next to the input $side" || bad "written: $(ls "$TMP/trap2")"
done

echo "$fails failure(s)"
exit $((fails > 0))
