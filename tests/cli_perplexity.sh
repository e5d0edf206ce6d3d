#!/bin/bash
# CLI-level checks of `spqr perplexity` and `spqr generate` on the tiny
# fixture model. Usage: bash cli_perplexity.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
FIX=$ROOT/tests/fixtures
MODEL=$FIX/tiny_gqa
TEXT=$FIX/model_text.txt
TMP=$(mktemp -d /tmp/spqr_cli_ppl.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# passive: spinning OpenMP barriers are very slow when the box is shared (see docs/model.md)
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh" || exit 1 # ok, bad, expect_rc; counts $fails

# 1. text output: PPL line, context and token count
expect_rc 0 "perplexity runs" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 -t 2
grep -Eq '^PPL = [0-9]+\.[0-9]+ ± [0-9]+\.[0-9]+$' "$TMP/out" && ok "prints PPL = x ± y" || bad "no PPL line: $(cat "$TMP/out")"
grep -q 'ctx 32' "$TMP/out" && grep -q 'tokens scored' "$TMP/out" && ok "prints ctx and tokens" || bad "no ctx/tokens in output"
grep -q '^\[1/' "$TMP/err" && ok "progress on stderr" || bad "no progress line on stderr"

# 2. JSON output: keys present, values consistent with the text run; a random
#    model over a 300-token vocabulary must have ppl well above 1.
expect_rc 0 "perplexity --json" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --json -t 1
J=$(cat "$TMP/out")
for k in ppl ppl_stderr ctx tokens seconds tokens_per_second; do
    echo "$J" | grep -q "\"$k\": " && ok "json key $k" || bad "json key $k missing: $J"
done
[ "$(echo "$J" | wc -l)" -eq 1 ] && ok "json is one line" || bad "json is not one line"
PPL=$(echo "$J" | sed -E 's/.*"ppl": ([0-9.]+).*/\1/')
WIN=$(echo "$J" | sed -E 's/.*"windows": ([0-9]+).*/\1/')
TOK=$(echo "$J" | sed -E 's/.*"tokens": ([0-9]+).*/\1/')
[ "$TOK" -eq $((WIN * 31)) ] && ok "tokens = windows * (ctx - 1)" || bad "tokens $TOK != $WIN * 31"
awk -v p="$PPL" 'BEGIN { exit !(p > 20 && p < 100000) }' && ok "ppl $PPL plausible for a random model" || bad "ppl $PPL implausible"
TXT_PPL=$(grep '^PPL' "$TMP/err" 2>/dev/null; "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 -t 2 2>/dev/null | sed -nE 's/^PPL = ([0-9.]+) .*/\1/p')
awk -v a="$PPL" -v b="$TXT_PPL" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d / a < 1e-4) }' && ok "1 and 2 threads agree" || bad "threads disagree: $PPL vs $TXT_PPL"

# the reference protocol (tools/llama_ref.py, float64) on the same text and model
for C in 32 64; do
    "$SPQR" perplexity "$MODEL" -f "$TEXT" -c $C --json > "$TMP/ref$C" 2>/dev/null
    GOT=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$TMP/ref$C")
    GTOK=$(sed -E 's/.*"tokens": ([0-9]+).*/\1/' "$TMP/ref$C")
    WANT=$(tr -d '\n ' < "$FIX/model_ppl.json" | sed -E "s/.*\"ctx$C\":\{\"ppl\":([0-9.]+),\"tokens_scored\":([0-9]+).*/\1 \2/")
    set -- $WANT
    awk -v a="$GOT" -v b="$1" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d / b < 1e-4) }' && [ "$GTOK" = "$2" ] \
        && ok "ctx $C: ppl $GOT over $GTOK tokens = reference $1 over $2" || bad "ctx $C: ppl $GOT/$GTOK vs reference $1/$2"
done

# --chunks limits the windows; llamacpp protocol scores half of each window
expect_rc 0 "--chunks 2" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 2 --json
grep -q '"windows": 2,' "$TMP/out" && grep -q '"tokens": 62,' "$TMP/out" && ok "--chunks 2 -> 2 windows, 62 tokens" || bad "--chunks: $(cat "$TMP/out")"
expect_rc 0 "--protocol llamacpp" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 2 --protocol llamacpp --json
grep -q '"tokens": 30,' "$TMP/out" && grep -q '"protocol": "llamacpp"' "$TMP/out" && ok "llamacpp scores ctx/2-1 per window" || bad "llamacpp: $(cat "$TMP/out")"

# -b 1 evaluates token by token through the KV cache (the one-token kernels): same ppl as one batch
expect_rc 0 "-b full" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 2 --json -t 1
PB=$(sed -nE 's/.*"ppl": ([0-9.]+).*/\1/p' "$TMP/out")
expect_rc 0 "-b 1" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 2 -b 1 --json -t 1
P1=$(sed -nE 's/.*"ppl": ([0-9.]+).*/\1/p' "$TMP/out")
awk -v a="$PB" -v b="$P1" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a) }' \
    && ok "-b 1 ppl $P1 equals batched $PB" || bad "-b 1 ppl $P1 vs batched $PB"
expect_rc 2 "-b 0" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 -b 0

# 3. KL against itself: 0 and 100 % top-1; mismatched base is refused
expect_rc 0 "--kl-base" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 3 --kl-base "$TMP/base.kl"
[ -s "$TMP/base.kl" ] && ok "base file written" || bad "base file missing"
expect_rc 0 "--kl vs itself" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 3 --kl "$TMP/base.kl" --json
KL=$(sed -E 's/.*"kl_mean": ([-0-9.e+]+).*/\1/' "$TMP/out")
AG=$(sed -E 's/.*"top1_agreement": ([0-9.]+).*/\1/' "$TMP/out")
awk -v k="$KL" 'BEGIN { exit !(k < 1e-6 && k > -1e-6) }' && ok "self KL = $KL" || bad "self KL = $KL: $(cat "$TMP/out")"
[ "$AG" = "100.0000" ] && ok "self top-1 agreement 100%" || bad "top-1 agreement $AG"
grep -q '"base_ppl"' "$TMP/out" && ok "reports the base ppl" || bad "no base_ppl"
# a perturbed copy of the model (rms_norm_eps 1e-5 -> 0.3) against the same base: KL clearly > 0
mkdir -p "$TMP/perturbed" && cp "$MODEL"/* "$TMP/perturbed/"
sed -i 's/"rms_norm_eps": 1e-05/"rms_norm_eps": 0.3/' "$TMP/perturbed/config.json"
expect_rc 0 "--kl vs a perturbed model" "$SPQR" perplexity "$TMP/perturbed" -f "$TEXT" -c 32 --chunks 3 --kl "$TMP/base.kl" --json
KL2=$(sed -E 's/.*"kl_mean": ([-0-9.e+]+).*/\1/' "$TMP/out")
awk -v k="$KL2" 'BEGIN { exit !(k > 1e-4) }' && ok "KL to a perturbed model is positive ($KL2)" || bad "KL perturbed: $(cat "$TMP/out")"
expect_rc 1 "--kl with another vocabulary" "$SPQR" perplexity "$FIX/tiny_tied" -f "$TEXT" -c 32 --chunks 3 --kl "$TMP/base.kl"
grep -q "vocabulary size" "$TMP/err" && ok "vocab mismatch named" || bad "vocab mismatch message: $(cat "$TMP/err")"
expect_rc 1 "--kl with another ctx" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 16 --chunks 3 --kl "$TMP/base.kl"
grep -q "context length" "$TMP/err" && ok "ctx mismatch named" || bad "ctx mismatch message: $(cat "$TMP/err")"
head -c 1000 "$TMP/base.kl" > "$TMP/trunc.kl"
expect_rc 1 "--kl with a truncated file" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 3 --kl "$TMP/trunc.kl"
echo "not a kl file at all, just text padding padding padding" > "$TMP/junk.kl"
expect_rc 1 "--kl with junk" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 32 --chunks 3 --kl "$TMP/junk.kl"
tail -c +200 "$TEXT" > "$TMP/other.txt"
expect_rc 1 "--kl on other text" "$SPQR" perplexity "$MODEL" -f "$TMP/other.txt" -c 32 --chunks 3 --kl "$TMP/base.kl"
grep -q "different tokens" "$TMP/err" && ok "different text named" || bad "text mismatch message: $(cat "$TMP/err")"

# 4. errors: empty text, short text, missing model, bad flags (exit 2)
: > "$TMP/empty.txt"
expect_rc 1 "empty text" "$SPQR" perplexity "$MODEL" -f "$TMP/empty.txt" -c 32
grep -q "empty" "$TMP/err" && [ "$(wc -l < "$TMP/err")" -eq 1 ] && ok "one-line empty-text error" || bad "empty text message: $(cat "$TMP/err")"
echo "short" > "$TMP/short.txt"
expect_rc 1 "text shorter than a window" "$SPQR" perplexity "$MODEL" -f "$TMP/short.txt" -c 32
expect_rc 1 "missing model" "$SPQR" perplexity "$TMP/nomodel" -f "$TEXT"
grep -q "^spqr: perplexity: " "$TMP/err" && ok "error prefix" || bad "error prefix: $(cat "$TMP/err")"
expect_rc 1 "missing text file" "$SPQR" perplexity "$MODEL" -f "$TMP/none.txt"
expect_rc 1 "ctx above max_position_embeddings" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 100000
expect_rc 2 "unknown flag" "$SPQR" perplexity "$MODEL" -f "$TEXT" --frobnicate
expect_rc 2 "bad -c" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 12x
expect_rc 2 "-c 1" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 1
expect_rc 2 "bad protocol" "$SPQR" perplexity "$MODEL" -f "$TEXT" --protocol foo
expect_rc 2 "missing -f" "$SPQR" perplexity "$MODEL"
expect_rc 2 "missing value" "$SPQR" perplexity "$MODEL" -f
expect_rc 2 "bad threads" "$SPQR" perplexity "$MODEL" -f "$TEXT" -t 0
expect_rc 2 "bad --kv-type" "$SPQR" perplexity "$MODEL" -f "$TEXT" --kv-type fp16
[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^spqr: perplexity: --kv-type: KV cache type 'fp16': expected f32 or f16" \
    "$TMP/err" && ok "--kv-type error: one line naming the values" || bad "--kv-type error: $(cat "$TMP/err")"
# the fp16 KV cache against an f32 base: a small, non-zero KL (exactly 0 would mean nothing was rounded)
expect_rc 0 "kl base (f32 cache)" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 64 --chunks 4 -t 2 --kl-base "$TMP/kv.kl" --json
expect_rc 0 "--kv-type f16 --kl" "$SPQR" perplexity "$MODEL" -f "$TEXT" -c 64 --chunks 4 -t 2 --kv-type f16 \
    --kl "$TMP/kv.kl" --json
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0 < d["kl_mean"] < 1e-5, d' "$TMP/out" \
    && ok "fp16 cache KL small and non-zero" || bad "fp16 cache KL: $(head -c 400 "$TMP/out")"

# 5. generate: greedy is deterministic, sampling with a seed is reproducible
expect_rc 0 "generate greedy" "$SPQR" generate "$MODEL" -p "The old lighthouse" -n 20 --temp 0 -t 2
cp "$TMP/out" "$TMP/g1"
grep -q "generation: 20 tokens\|generation: [0-9]* tokens" "$TMP/err" && grep -q "tokens/s" "$TMP/err" && ok "speed report on stderr" || bad "no speed report: $(cat "$TMP/err")"
"$SPQR" generate "$MODEL" -p "The old lighthouse" -n 20 --temp 0 -t 1 > "$TMP/g2" 2>/dev/null
cmp -s "$TMP/g1" "$TMP/g2" && ok "greedy generation deterministic (1 vs 2 threads)" || bad "greedy differs"
[ "$(wc -c < "$TMP/g1")" -gt 1 ] && ok "generated text is non-empty" || bad "empty generation"
[ "$(head -c 18 "$TMP/g1")" = "The old lighthouse" ] && [ "$(wc -c < "$TMP/g1")" -gt 19 ] \
    && ok "generate echoes the prompt, then the continuation" || bad "stdout does not start with the prompt"
"$SPQR" generate "$MODEL" -p "The" -n 30 --temp 1.0 --top-p 0.9 --seed 7 > "$TMP/s1" 2>/dev/null
"$SPQR" generate "$MODEL" -p "The" -n 30 --temp 1.0 --top-p 0.9 --seed 7 > "$TMP/s2" 2>/dev/null
"$SPQR" generate "$MODEL" -p "The" -n 30 --temp 1.0 --top-p 0.9 --seed 8 > "$TMP/s3" 2>/dev/null
cmp -s "$TMP/s1" "$TMP/s2" && ok "same seed, same text" || bad "same seed differs"
cmp -s "$TMP/s1" "$TMP/s3" && bad "different seeds gave identical text" || ok "different seed, different text"
expect_rc 2 "generate bad temp" "$SPQR" generate "$MODEL" -p "x" --temp -1
expect_rc 2 "generate bad top-p" "$SPQR" generate "$MODEL" -p "x" --top-p 0
expect_rc 2 "generate missing prompt" "$SPQR" generate "$MODEL"
expect_rc 1 "generate missing model" "$SPQR" generate "$TMP/nomodel" -p "x"
expect_rc 1 "generate prompt longer than ctx" "$SPQR" generate "$MODEL" -p "The old lighthouse stood at the end" -c 4

# 6. the trained default model against the training script's held-out ppl
DEF=$ROOT/models/default
if [ -f "$DEF/eval.json" ] && [ -f "$DEF/model.safetensors" ] && [ -f "$ROOT/data/heldout.txt" ]; then
    WANT=$(sed -nE 's/.*"heldout_ppl": *([0-9.]+).*/\1/p' "$DEF/eval.json")
    SEQ=$(sed -nE 's/.*"seqlen": *([0-9]+).*/\1/p' "$DEF/eval.json")
    expect_rc 0 "default model held-out ppl" "$SPQR" perplexity "$DEF" -f "$ROOT/data/heldout.txt" -c "${SEQ:-256}" --json
    GOT=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$TMP/out")
    awk -v a="$GOT" -v b="$WANT" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d / b < 0.005) }' \
        && ok "default held-out ppl $GOT within 0.5% of eval.json $WANT" || bad "default ppl $GOT vs eval.json $WANT"
else
    bad "models/default/eval.json, model.safetensors or data/heldout.txt missing (committed files: broken checkout)"
fi

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
