#!/bin/bash
# CLI-level checks of `spqr bench` and of the synthetic .spqr writer
# (gen_synthetic_llama --spqr). Usage: bash cli_bench.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
DEF=$ROOT/models/default
GEN=$(dirname "$SPQR")/gen_synthetic_llama
TMP=$(mktemp -d /tmp/spqr_cli_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh" || exit 1 # ok, bad, expect_rc; counts $fails
one_line() { # description: stderr is exactly one line starting with "spqr: bench:"
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: bench: ' "$TMP/err"; then ok "$1: one-line error"
    else bad "$1: stderr is not one error line: $(head -c 300 "$TMP/err")"; fi
}

# 1. bad flags and models: exit 2 (flags) or 1 (load), one line, nothing on stdout
for args in "" "-p 0 $DEF" "-n -1 $DEF" "-t 0 $DEF" "-r 0 $DEF" "-p 8x $DEF" "--bogus $DEF" "$DEF -p" \
    "--kv-type F16 $DEF" "-p 600 $DEF" "-p 500 -n 13 $DEF"; do
    expect_rc 2 "bench $args" "$SPQR" bench $args --json; one_line "bench $args"
    [ -s "$TMP/out" ] && bad "bench $args printed on stdout: $(head -c 200 "$TMP/out")"
done
grep -q 'max_position_embeddings 512' "$TMP/err" && ok "context error names the limit" || bad "context error: $(cat "$TMP/err")"
# the context is checked before the bandwidth probe: the table's header line is not printed either
expect_rc 2 "bench -p 600 (table)" "$SPQR" bench -p 600 "$DEF"; one_line "bench -p 600 (table)"
[ -s "$TMP/out" ] && bad "bench -p 600 printed on stdout: $(head -c 200 "$TMP/out")"
expect_rc 1 "missing model" "$SPQR" bench "$TMP/nope.spqr"; one_line "missing model"
printf 'not a model' >"$TMP/junk.spqr"
expect_rc 1 "junk .spqr" "$SPQR" bench "$TMP/junk.spqr"; one_line "junk .spqr"

# 2. fp16 default model vs a quick SpQR quantization of it, JSON
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
expect_rc 0 "quantize the default model (fast)" "$SPQR" quantize "$DEF" -o "$TMP/d.spqr" --calib "$TMP/calib.txt" \
    --recipe paper-w3 --nsamples 4 --seqlen 32 -t 2 -q
expect_rc 0 "bench fp16 vs .spqr --json" "$SPQR" bench "$DEF" "$TMP/d.spqr" -p 8 -n 4 -r 2 -t 2 --json
[ "$(wc -l <"$TMP/out")" -eq 1 ] && ok "json is one line" || bad "json is not one line"
/usr/bin/python3 - "$TMP/out" "$DEF/config.json" <<'EOF' && ok "json fields and values" || bad "json: $(head -c 600 "$TMP/out")"
import json, math, sys
d = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
bw = d["bandwidth_gbps"]
assert math.isfinite(bw) and bw > 0, bw
ms = d["models"]
assert [m["kind"] for m in ms] == ["fp16", "spqr"], ms
# fp16 weights streamed per token, from the config: 7 linears per layer + the head
H, I, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
hd = c.get("head_dim", H // c["num_attention_heads"])
q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
params = L * (H * q + 2 * H * kv + q * H + 3 * H * I) + V * H
assert ms[0]["weight_bytes"] == 2 * params, (ms[0]["weight_bytes"], 2 * params)
assert ms[0]["bits_per_param"] == 16, ms[0]
assert 3.5 < ms[1]["bits_per_param"] < 5, ms[1]          # paper-w3 preset: ~4.3 stored bits
assert ms[1]["weight_bytes"] < 0.5 * ms[0]["weight_bytes"], ms  # packed linears + dense fp16 head
for m in ms:
    for k in ("path", "kind", "weight_bytes", "bits_per_param", "prompt_tokens", "prompt_tps", "prompt_tps_sd",
              "decode_tokens", "decode_tps", "decode_tps_sd", "decode_bound_tps", "speedup_prompt",
              "speedup_decode", "kernel_path"):
        assert k in m, (k, m)
    assert m["prompt_tokens"] == 8 and m["decode_tokens"] == 4, m
    for k in ("prompt_tps", "decode_tps", "decode_bound_tps", "speedup_prompt", "speedup_decode"):
        assert math.isfinite(m[k]) and m[k] > 0, (k, m)
    for k in ("prompt_tps_sd", "decode_tps_sd"):
        assert math.isfinite(m[k]) and m[k] >= 0, (k, m)
    assert abs(m["decode_bound_tps"] - bw * 1e9 / m["weight_bytes"]) <= 1e-9 * m["decode_bound_tps"], m
    assert m["logits_finite"] is True and m["kernel_path"], m
assert d["kv_type"] == "f16", d  # the default KV cache, as llama.cpp's
assert ms[0]["speedup_prompt"] == 1 and ms[0]["speedup_decode"] == 1, ms[0]
for k, s in (("prompt_tps", "speedup_prompt"), ("decode_tps", "speedup_decode")):
    assert abs(ms[1][s] - ms[1][k] / ms[0][k]) <= 1e-9 * ms[1][s], (k, ms)
EOF

expect_rc 2 "bench --kv-type f8" "$SPQR" bench "$DEF" --kv-type f8; one_line "bench --kv-type f8"
grep -q "KV cache type 'f8': expected f32 or f16" "$TMP/err" && ok "--kv-type error names the values" \
    || bad "--kv-type error: $(cat "$TMP/err")"
expect_rc 0 "bench --kv-type f32 --json" "$SPQR" bench "$DEF" -p 4 -n 2 -r 1 -t 1 --kv-type f32 --json
grep -q '"kv_type":"f32"' "$TMP/out" && ok "json names the f32 cache" || bad "json kv_type: $(head -c 300 "$TMP/out")"
expect_rc 2 "generate --kv-type q8" "$SPQR" generate "$DEF" -p hi -n 2 --kv-type q8
[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^spqr: generate: --kv-type: KV cache type 'q8'" "$TMP/err" \
    && ok "generate --kv-type q8: one line" || bad "generate --kv-type q8: $(head -c 300 "$TMP/err")"
for kv in f16 f32; do
    expect_rc 0 "generate --kv-type $kv" "$SPQR" generate "$DEF" -p "Once upon a time" -n 8 --temp 0 -t 2 --kv-type $kv
    [ -s "$TMP/out" ] && ok "generate --kv-type $kv printed text" || bad "generate --kv-type $kv printed nothing"
done

# 3. table output: a bandwidth line and a pp/tg row per model
expect_rc 0 "bench table" "$SPQR" bench "$DEF" "$TMP/d.spqr" -p 4 -n 2 -r 1 -t 1
grep -q '^read bandwidth [0-9.]* GB/s' "$TMP/out" && ok "table: bandwidth line" || bad "table: $(head -3 "$TMP/out")"
[ "$(grep -cE '^\| .*(fp16|spqr) .*\| +(pp4|tg2) \|' "$TMP/out")" -eq 4 ] && ok "table: 4 rows" || bad "table rows: $(cat "$TMP/out")"

# 3b. SPQR_DENSE_ISA narrows the dense kernels (to measure an AVX2-only CPU's fp16 on a wider
#     one), reported as the fp16 row's kernel path; an unknown name, an ISA the CPU cannot run
#     and an unknown SPQR_DENSE_GEMM are refused in one line (exit 2) before any output
for isa in scalar avx2; do
    [ "$isa" = avx2 ] && ! grep -qw avx2 /proc/cpuinfo && continue
    SPQR_DENSE_ISA=$isa expect_rc 0 "bench with SPQR_DENSE_ISA=$isa" "$SPQR" bench "$DEF" -p 4 -n 2 -r 1 -t 1 --json
    got=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["models"][0]["kernel_path"])' "$TMP/out")
    case "$isa:$got" in scalar:scalar | avx2:avx2+f16c) ok "SPQR_DENSE_ISA=$isa runs $got" ;;
    *) bad "SPQR_DENSE_ISA=$isa ran '$got'" ;; esac
done

absent=neon; grep -qw asimd /proc/cpuinfo && absent=avx512
for kv in SPQR_DENSE_ISA=avx3 SPQR_DENSE_ISA=$absent SPQR_DENSE_GEMM=openblas; do
    env "$kv" "$SPQR" bench "$DEF" -p 4 -n 2 -r 1 -t 1 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 2 ] && [ ! -s "$TMP/out" ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "${kv%%=*}" "$TMP/err"; then
        ok "$kv refused: $(cat "$TMP/err")"
    else bad "$kv: rc $rc, out $(head -c 200 "$TMP/out"), err $(cat "$TMP/err")"; fi
done

# 4. synthetic .spqr: loads, runs finite, is reproducible, says it is synthetic
if [ -x "$GEN" ]; then
    G=(--layers 2 --hidden 64 --inter 176 --heads 4 --kv-heads 2 --vocab 512 --ctx 128 --tokenizer "$ROOT/tests/fixtures/tiny_gqa/tokenizer.json")
    expect_rc 2 "gen --wbits 9" "$GEN" --spqr "$TMP/x.spqr" --wbits 9 "${G[@]}"
    expect_rc 2 "gen --outlier-share 2" "$GEN" --spqr "$TMP/x.spqr" --outlier-share 2 "${G[@]}"
    expect_rc 2 "gen without outputs" "$GEN" "${G[@]}"
    [ -e "$TMP/x.spqr" ] && bad "rejected flags left a file"
    expect_rc 0 "gen --spqr" "$GEN" "$TMP/syn" --spqr "$TMP/syn.spqr" "${G[@]}"
    expect_rc 0 "gen --spqr again" "$GEN" --spqr "$TMP/syn2.spqr" "${G[@]}"
    cmp -s "$TMP/syn.spqr" "$TMP/syn2.spqr" && ok "synthetic file is deterministic" || bad "two runs differ"
    expect_rc 0 "info on the synthetic file" "$SPQR" info "$TMP/syn.spqr"
    grep -q '^preset: synthetic' "$TMP/out" && ok "metadata says synthetic" || bad "info: $(head -5 "$TMP/out")"
    # 14 packed linears, w3, outlier share near 1 %; formula bits = 3 + 6/16 + 64/256 + 32 * share
    /usr/bin/python3 - "$TMP/out" <<'EOF' && ok "synthetic layout: w3 g16, ~1% outliers, formula bits" || bad "layout: $(cat "$TMP/out")"
import re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"model\.layers\.\d+\.", l) and "x" in l.split()[1]]
assert len(rows) == 14, rows
for r in rows:
    bits, group, share, formula = int(r[2]), int(r[3]), float(r[4].rstrip("%")) / 100, float(r[6])
    assert bits == 3 and group == 16, r
    assert 0.005 < share < 0.02, r
    assert abs(formula - (3 + 6 / 16 + 64 / 256 + 32 * share)) < 0.01, r
EOF
    expect_rc 0 "perplexity on the synthetic file" "$SPQR" perplexity "$TMP/syn.spqr" -f "$ROOT/tests/fixtures/model_text.txt" -c 32 --json -t 2
    /usr/bin/python3 -c '
import json, math, sys
p = json.load(open(sys.argv[1]))["ppl"]
assert math.isfinite(p) and 1 < p < 1e6, p' "$TMP/out" && ok "finite perplexity" || bad "perplexity: $(cat "$TMP/out")"
    expect_rc 0 "generate on the synthetic file" "$SPQR" generate "$TMP/syn.spqr" -p "hello" -n 8 --temp 0 -t 2
    expect_rc 0 "bench HF dir vs synthetic .spqr" "$SPQR" bench "$TMP/syn" "$TMP/syn.spqr" -p 8 -n 4 -r 1 --json
    /usr/bin/python3 -c '
import json, sys
ms = json.load(open(sys.argv[1]))["models"]
assert [m["kind"] for m in ms] == ["fp16", "spqr"] and all(m["logits_finite"] for m in ms), ms' "$TMP/out" \
        && ok "synthetic pair benches with finite logits" || bad "synthetic bench: $(cat "$TMP/out")"
else
    bad "gen_synthetic_llama not found next to $SPQR"
fi

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
