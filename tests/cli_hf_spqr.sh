#!/bin/bash
# spqr export --to hf-spqr on a real quantization of the default model:
# the layout transformers' SpQR integration expects (config fields, tensor
# names, dtypes, shapes), the independent Python decoder of
# tools/hf_spqr_decode.py agrees with the C decoder bit for bit, and the
# model decoded by the format's half-precision rule keeps the .spqr's
# perplexity within 1e-3 relative. Refusals: anything but the one
# configuration, one line, nothing created.
# Usage: bash cli_hf_spqr.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
BUILD=$(dirname "$SPQR")
TMP=$(mktemp -d /tmp/spqr_cli_hf_spqr.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive SPQR_KERNEL=exact
. "$ROOT/tests/lib.sh"
PY=/usr/bin/python3
one_line_error() {
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: export: ' "$TMP/err"; then ok "$1: one-line error"
    else bad "$1: stderr is not one error line: $(head -c 300 "$TMP/err")"; fi
}
ppl() { "$SPQR" perplexity "$1" -f "$ROOT/data/heldout.txt" -c 128 --chunks 8 -t 2 --json 2>/dev/null |
    $PY -c 'import json,sys; print(repr(json.load(sys.stdin)["ppl"]))'; }

expect_rc 0 "quantize the default model (paper-w3)" "$SPQR" quantize "$ROOT/models/default" -o "$TMP/q.spqr" \
    --calib "$ROOT/data/calib.txt" --recipe paper-w3 --nsamples 8 --seqlen 128 -t 2 -q
expect_rc 0 "export hf-spqr" "$SPQR" export "$TMP/q.spqr" --to hf-spqr "$TMP/hs"

# 1. what transformers' integration reads
$PY - "$TMP/hs" >"$TMP/py" 2>&1 <<'PYEOF' && ok "layout: $(tail -1 "$TMP/py")" || bad "layout: $(tail -3 "$TMP/py")"
import json, struct, sys
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
q = cfg["quantization_config"]
assert (q["quant_method"], q["bits"], q["beta1"], q["beta2"]) == ("spqr", 3, 16, 16), q
assert cfg["torch_dtype"] == "float16"
assert "lm_head.weight" in q["modules_to_not_convert"] and "model.embed_tokens.weight" in q["modules_to_not_convert"]
blob = open(d + "/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
h = json.loads(blob[8:8 + n])
assert h.pop("__metadata__") == {"format": "pt"}
mods = sorted({k[:-len(".dense_weights")] for k in h if k.endswith(".dense_weights")})
assert len(mods) == 6 * 7, len(mods)  # q k v o gate up down in 6 layers
want = {"dense_weights": "I64", "row_offsets": "I32", "col_vals": "I32", "in_perm": "I32"}
for m in mods:
    for part, dt in want.items():
        t = h[f"{m}.{part}"]
        assert t["dtype"] == dt and len(t["shape"]) == 1, (m, part, t)
        assert q["shapes"][f"{m}.{part}.shape"] == t["shape"][0], (m, part)
    rows, cols = h[m + ".row_offsets"]["shape"][0] - 1, 2 * h[m + ".in_perm"]["shape"][0]
    assert h[m + ".dense_weights"]["shape"][0] == rows * cols // 16, m
    assert m + ".weight" not in h
for k, t in h.items():
    if not any(k.startswith(m + ".") for m in mods):
        assert t["dtype"] == "F16" and k in q["modules_to_not_convert"], k
print(f"{len(mods)} quantized linears, {len(h) - 4 * len(mods)} fp16 tensors, shapes in the config match")
PYEOF

# 2. the independent decoder and the C decoder agree bit for bit
for m in model.layers.0.self_attn.q_proj model.layers.2.self_attn.k_proj model.layers.3.mlp.down_proj model.layers.5.mlp.up_proj; do
    "$BUILD/test_hf_spqr" --decode "$TMP/hs/model.safetensors" "$m" "$TMP/c.f32" &&
        $PY "$ROOT/tools/hf_spqr_decode.py" "$TMP/hs" --module "$m" --raw "$TMP/py.f32" &&
        cmp -s "$TMP/c.f32" "$TMP/py.f32" && ok "$m: C and Python decodes identical ($(stat -c %s "$TMP/c.f32") bytes)" ||
        bad "$m: C and Python decodes differ"
done

# 3. the model decoded by the format's rule keeps the .spqr's perplexity
expect_rc 0 "Python decode of the whole model" $PY "$ROOT/tools/hf_spqr_decode.py" "$TMP/hs" "$TMP/dec"
P_Q=$(ppl "$TMP/q.spqr"); P_D=$(ppl "$TMP/dec")
$PY -c "import sys; q,f=$P_Q,$P_D; sys.exit(not 0 < abs(f-q)/q < 1e-3)" &&
    ok "format-decoded perplexity $P_D vs .spqr $P_Q (differs, < 1e-3 relative)" || bad "format-decoded $P_D vs .spqr $P_Q"

# 4. import: back to a .spqr whose quantized linears dequantize as the original's
expect_rc 0 "import" "$SPQR" import "$TMP/hs" -o "$TMP/imp.spqr"
expect_rc 0 "export the original as hf-fp16" "$SPQR" export "$TMP/q.spqr" --to hf-fp16 "$TMP/f_orig"
expect_rc 0 "export the import as hf-fp16" "$SPQR" export "$TMP/imp.spqr" --to hf-fp16 "$TMP/f_imp"
# Non-outlier weights come back bit for bit (same codes and statistics); an
# outlier o comes back exactly unless no code w leaves a rest v with
# fp16(w + v) == o (an o far smaller than every grid point): the format's
# limit, a few per mille of the outliers, off by less than v's rounding.
$PY - "$TMP/f_orig/model.safetensors" "$TMP/f_imp/model.safetensors" "$TMP/hs/config.json" >"$TMP/py" 2>&1 <<'PYEOF' && ok "round trip: $(tail -1 "$TMP/py")" || bad "round trip: $(tail -3 "$TMP/py")"
import json, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read(); (n,) = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n]); h.pop("__metadata__")
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]], dtype=np.float16).astype(np.float64) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
nnz = sum(v for k, v in json.load(open(sys.argv[3]))["quantization_config"]["shapes"].items() if k.endswith("col_vals.shape"))
assert set(a) == set(b)
lin = [k for k in a if k.endswith("_proj.weight")]
assert len(lin) == 42
diff = sum(int(np.sum(a[k] != b[k])) for k in lin)
worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in lin)
assert diff <= 0.005 * nnz, (diff, nnz)
assert worst < 2e-4, worst
print(f"42 linears: {diff} weights differ after .spqr -> hf-spqr -> .spqr (by at most {worst:.2g}; the file has {nnz} outliers)")
PYEOF
P_I=$(ppl "$TMP/imp.spqr")
$PY -c "import sys; q,f=$P_Q,$P_I; sys.exit(not abs(f-q)/q < 1e-3)" &&
    ok "imported perplexity $P_I vs .spqr $P_Q (< 1e-3 relative)" || bad "imported $P_I vs .spqr $P_Q"
expect_rc 0 "generate from the import" "$SPQR" generate "$TMP/imp.spqr" -p "Once upon a time" -n 8 --temp 0

# 4b. another checkpoint: a synthetic Llama (random weights, GQA), quantized w3/beta16, round trip
if [ -x "$BUILD/gen_synthetic_llama" ]; then
    expect_rc 0 "synthetic checkpoint" "$BUILD/gen_synthetic_llama" "$TMP/syn" --layers 2 --hidden 64 --inter 128 \
        --heads 4 --kv-heads 2 --vocab 300 --ctx 128 --tokenizer "$ROOT/tests/fixtures/tiny_gqa/tokenizer.json"
    expect_rc 0 "quantize it (paper-w3)" "$SPQR" quantize "$TMP/syn" -o "$TMP/syn.spqr" --calib "$ROOT/data/calib.txt" \
        --recipe paper-w3 --nsamples 4 --seqlen 64 -t 2 -q
    expect_rc 0 "export it as hf-spqr" "$SPQR" export "$TMP/syn.spqr" --to hf-spqr "$TMP/syn_hs"
    expect_rc 0 "import it back" "$SPQR" import "$TMP/syn_hs" -o "$TMP/syn_imp.spqr"
    expect_rc 0 "decode it by the format's rule" $PY "$ROOT/tools/hf_spqr_decode.py" "$TMP/syn_hs" "$TMP/syn_dec"
    sppl() { "$SPQR" perplexity "$1" -f "$ROOT/data/heldout.txt" -c 64 --chunks 8 -t 2 --json 2>/dev/null |
        $PY -c 'import json,sys; print(repr(json.load(sys.stdin)["ppl"]))'; }
    S_Q=$(sppl "$TMP/syn.spqr"); S_I=$(sppl "$TMP/syn_imp.spqr"); S_D=$(sppl "$TMP/syn_dec")
    $PY -c "import sys; q,i,d=$S_Q,$S_I,$S_D; sys.exit(not (abs(i-q)/q < 1e-3 and abs(d-q)/q < 1e-3))" &&
        ok "synthetic: .spqr $S_Q, imported $S_I, format-decoded $S_D (< 1e-3 relative)" ||
        bad "synthetic: .spqr $S_Q, imported $S_I, format-decoded $S_D"
fi

# the directory itself is not run: the loader points to import
expect_rc 1 "perplexity on the hf-spqr directory" "$SPQR" perplexity "$TMP/hs" -f "$ROOT/data/heldout.txt" -c 64
grep -q 'spqr import' "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ] && ok "the error says to run spqr import" ||
    bad "hf-spqr dir error: $(cat "$TMP/err")"

# 5. hostile or foreign directories: one line each, no output file
imp_one_line() {
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: import: ' "$TMP/err" && grep -q -- "$2" "$TMP/err" && [ ! -e "$TMP/h.spqr" ]
    then ok "$1: one line naming the cause, nothing written"; else bad "$1: $(head -c 300 "$TMP/err")"; fi
}
hostile() { # description expected-text python-edit: copies hs to $TMP/h, edits it, imports
    rm -rf "$TMP/h" "$TMP/h.spqr"; cp -r "$TMP/hs" "$TMP/h"
    $PY - "$TMP/h" <<<"$3" || bad "$1: the edit failed"
    expect_rc 1 "$1" "$SPQR" import "$TMP/h" -o "$TMP/h.spqr"; imp_one_line "$1" "$2"
}
ST='import json, struct, sys
d = sys.argv[1]; p = d + "/model.safetensors"; b = bytearray(open(p, "rb").read())
(n,) = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n])
def at(name): return 8 + n + h[name]["data_offsets"][0]
'
hostile "no quantization_config" 'not a Hugging Face SpQR' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); del c["quantization_config"]; json.dump(c, open(p, "w"))'
hostile "fewer num_hidden_layers than stored" 'is not used by a' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); c["num_hidden_layers"] -= 1; json.dump(c, open(p, "w"))'
hostile "config that does not parse as a model" 'num_attention_heads' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); del c["num_attention_heads"]; json.dump(c, open(p, "w"))'
hostile "4-bit config" 'bits 3' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); c["quantization_config"]["bits"] = 4; json.dump(c, open(p, "w"))'
hostile "wrong shapes entry" 'does not match' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); c["quantization_config"]["shapes"]["model.layers.1.mlp.up_proj.col_vals.shape"] += 1; json.dump(c, open(p, "w"))'
hostile "duplicate in_perm entry" 'not a permutation' "$ST"'
o = at("model.layers.0.self_attn.q_proj.in_perm"); b[o + 4:o + 8] = b[o:o + 4]; open(p, "wb").write(b)'
hostile "outlier column out of range" 'out of range' "$ST"'
o = at("model.layers.2.mlp.down_proj.col_vals"); b[o:o + 2] = struct.pack("<H", 60000); open(p, "wb").write(b)'
hostile "row_offsets decreasing" 'decrease' "$ST"'
o = at("model.layers.0.mlp.gate_proj.row_offsets"); b[o + 8:o + 12] = struct.pack("<i", 0); b[o + 4:o + 8] = struct.pack("<i", 5); open(p, "wb").write(b)'
hostile "second-level bytes disagree" 'second-level' "$ST"'
o = at("model.layers.4.self_attn.v_proj.dense_weights"); b[o + 15] ^= 0x08; open(p, "wb").write(b)'
hostile "truncated safetensors" 'model.safetensors' 'import sys; p = sys.argv[1] + "/model.safetensors"; b = open(p, "rb").read(); open(p, "wb").write(b[:len(b) // 2])'
hostile "a quantized linear missing its in_perm" 'has no in_perm' "$ST"'
i = b.index(b"model.layers.0.self_attn.q_proj.in_perm"); b[i + 38] = ord("X"); open(p, "wb").write(b)'
# a config the tensors contradict: the loader's checks run on the written file before it takes its name
hostile "vocab_size the embedding does not have" 'would not load' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); c["vocab_size"] = 8192; json.dump(c, open(p, "w"))'
hostile "num_key_value_heads removed" 'would not load' 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); c["num_key_value_heads"] = c["num_attention_heads"] // 2 if c.get("num_key_value_heads") == c["num_attention_heads"] else c["num_attention_heads"]; json.dump(c, open(p, "w"))'
ls -A "$TMP" | grep -q '^\.h\.spqr\.tmp' && bad "a temporary was left" || ok "no temporary left by the refused imports"
rm -rf "$TMP/h"
expect_rc 1 "import of a plain checkpoint" "$SPQR" import "$ROOT/tests/fixtures/tiny_gqa" -o "$TMP/h.spqr"; imp_one_line "plain checkpoint" 'not a Hugging Face SpQR'
: >"$TMP/other.txt"
expect_rc 1 "import over another kind of file" "$SPQR" import "$TMP/hs" -o "$TMP/other.txt"
[ ! -s "$TMP/other.txt" ] && ok "the other file is untouched" || bad "other.txt was replaced"

# 6. refusals: the tiny fixture (72 columns) and 4-bit weights
expect_rc 0 "quantize tiny_gqa" "$SPQR" quantize "$ROOT/tests/fixtures/tiny_gqa" -o "$TMP/tiny.spqr" \
    --calib "$ROOT/data/calib.txt" --nsamples 2 --seqlen 32 -t 2 -q
expect_rc 1 "72 columns refused" "$SPQR" export "$TMP/tiny.spqr" --to hf-spqr "$TMP/r1"; one_line_error "72 columns"
grep -q 'multiples of 16' "$TMP/err" && grep -q 'paper-w3' "$TMP/err" && ok "the refusal says what is supported" ||
    bad "refusal text: $(cat "$TMP/err")"
[ ! -e "$TMP/r1" ] && ok "a refused export creates nothing" || bad "$TMP/r1 created"
if [ -x "$BUILD/gen_synthetic_llama" ]; then
    expect_rc 0 "synthetic w4 .spqr" "$BUILD/gen_synthetic_llama" --spqr "$TMP/w4.spqr" --wbits 4 --layers 1 --hidden 64 \
        --inter 128 --heads 4 --kv-heads 2 --vocab 300 --ctx 64 --tokenizer "$ROOT/tests/fixtures/tiny_gqa/tokenizer.json"
    expect_rc 1 "4-bit refused" "$SPQR" export "$TMP/w4.spqr" --to hf-spqr "$TMP/r2"; one_line_error "4-bit"
    grep -q 'not 3-bit' "$TMP/err" && ok "the refusal names the cause" || bad "w4 refusal: $(cat "$TMP/err")"
else
    bad "gen_synthetic_llama not found next to $SPQR"
fi

# 6. a family with fused linears: Phi-3's q/k/v and gate/up go out as the
# qkv_proj and gate_up_proj modules transformers' Phi-3 has (one shared
# column permutation), the independent decoder's checkpoint loads under the
# fused names with the .spqr's perplexity, and import splits them back
FAM=$ROOT/tests/fixtures/families/phi3
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib6k.txt"
pplf() { "$SPQR" perplexity "$1" -f "$ROOT/tests/fixtures/model_text.txt" -c 32 -t 2 --json 2>/dev/null |
    $PY -c 'import json,sys; print(repr(json.load(sys.stdin)["ppl"]))'; }
expect_rc 0 "phi3: quantize (paper-w3)" "$SPQR" quantize "$FAM" -o "$TMP/phi3.spqr" --calib "$TMP/calib6k.txt" \
    --recipe paper-w3 --nsamples 4 --seqlen 32 -t 2 -q
expect_rc 0 "phi3: export hf-spqr" "$SPQR" export "$TMP/phi3.spqr" --to hf-spqr "$TMP/phi3_hs"
$PY - "$TMP/phi3_hs" <<'PYEOF' && ok "phi3: fused modules only, shapes keys for them" || bad "phi3: hf-spqr module names"
import json, struct, sys
d = sys.argv[1]
blob = open(d + "/model.safetensors", "rb").read()
names = set(json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]]))
shapes = json.load(open(d + "/config.json"))["quantization_config"]["shapes"]
assert "model.layers.0.self_attn.qkv_proj.dense_weights" in names and "model.layers.0.mlp.gate_up_proj.in_perm" in names
assert not any(".q_proj." in n or ".gate_proj." in n for n in names), "split modules written"
assert "model.layers.0.self_attn.qkv_proj.row_offsets.shape" in shapes
PYEOF
expect_rc 0 "phi3: Python decode" $PY "$ROOT/tools/hf_spqr_decode.py" "$TMP/phi3_hs" "$TMP/phi3_dec"
expect_rc 0 "phi3: import" "$SPQR" import "$TMP/phi3_hs" -o "$TMP/phi3_imp.spqr"
"$SPQR" info "$TMP/phi3_imp.spqr" | grep -q '^model.layers.0.self_attn.k_proj.weight  *32x64 ' &&
    ok "phi3: import splits qkv_proj (k_proj 32x64)" || bad "phi3: import has no split k_proj 32x64"
P_Q=$(pplf "$TMP/phi3.spqr")
for v in "format-decoded:$TMP/phi3_dec" "imported:$TMP/phi3_imp.spqr"; do
    P_V=$(pplf "${v#*:}")
    $PY -c "import sys; sys.exit(not abs(${P_V:-0} - $P_Q) / $P_Q < 1e-3)" &&
        ok "phi3: ${v%%:*} perplexity $P_V vs .spqr $P_Q (< 1e-3 relative)" || bad "phi3: ${v%%:*} '$P_V' vs .spqr $P_Q"
done

echo "$fails failure(s)"
exit $((fails > 0))
