#!/bin/bash
# `spqr quantize --target-bits B` (whole file) and `--target-bits-linears B`
# meet B within +-0.02 bits on checkpoints of different shapes, as measured
# by `spqr info` from the written file; budgets the grid cannot reach are
# refused with the reachable range; an interrupted run resumes to the
# identical file. Usage: bash cli_target_bits.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
GEN=$(dirname "$SPQR")/gen_synthetic_llama
TMP=$(mktemp -d /tmp/spqr_cli_target.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
source "$ROOT/tests/lib.sh"
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
C=(--calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -t 2 -q)

near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d <= 0.02 && d >= -0.02) }'; }

# reachable range of a model: a budget of 1 bit is refused and names it
range() { # model extra-flags... -> prints "lo hi"
    local model=$1; shift
    "$SPQR" quantize "$model" -o "$TMP/r.spqr" "${C[@]}" "$@" >"$TMP/out" 2>"$TMP/err"
    sed -nE 's/.*can reach for this model: ([0-9.]+) to ([0-9.]+).*/\1 \2/p' "$TMP/err"
}

# 1. whole file, two shapes (GQA 72-wide untied; qwen3 64-wide, 3 layers, q/k norms)
for model in "$ROOT/tests/fixtures/tiny_gqa" "$ROOT/tests/fixtures/families/qwen3"; do
    name=$(basename "$model")
    read -r lo hi <<<"$(range "$model" --target-bits 1)"
    if [ -z "${lo:-}" ]; then bad "$name: budget of 1 bit not refused with a range: $(cat "$TMP/err")"; continue; fi
    [ "$(wc -l <"$TMP/err")" -eq 1 ] && ok "$name: unreachable budget refused in one line ($lo to $hi)" \
        || bad "$name: refusal is not one line"
    for f in 0.2 0.5 0.8; do
        B=$(awk -v lo="$lo" -v hi="$hi" -v f="$f" 'BEGIN { printf "%g", int(100 * (lo + f * (hi - lo))) / 100 }')
        expect_rc 0 "$name --target-bits $B" "$SPQR" quantize "$model" -o "$TMP/$name.spqr" "${C[@]}" --target-bits "$B"
        got=$(sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p' "$TMP/out")
        "$SPQR" info "$TMP/$name.spqr" >"$TMP/info" 2>&1
        file=$(sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p' "$TMP/info")
        near "$file" "$B" && ok "$name: whole file $file bits for target $B" || bad "$name: whole file $file bits, target $B"
        near "$got" "$file" && ok "$name: the report agrees ($got)" || bad "$name: report says $got, info $file"
        grep -q '^target: '"$B"' bits per parameter of the whole file' "$TMP/info" \
            && grep -Eq '^model\.layers\.0\.self_attn\.q_proj\.weight .* w[2-8] g[0-9]+ (f16|q3)' "$TMP/info" \
            && ok "$name: info shows the target and each layer's setting" \
            || bad "$name: info lacks the target or settings: $(grep -E '^target|q_proj' "$TMP/info" | head -3)"
    done
done

# 1b. whole file under each way of storing the embedding and the head, at
# the middle of each reachable range: the CLI defaults (head and embedding
# quantized; tied: the head's table is the embedding, counted once), tied
# with two tables, and dense embedding and/or head
whole_case() { # label model flags...
    local label=$1 model=$2; shift 2
    read -r lo hi <<<"$(range "$model" --target-bits 1 "$@")"
    if [ -z "${lo:-}" ]; then bad "$label: budget of 1 bit not refused with a range: $(cat "$TMP/err")"; return; fi
    B=$(awk -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%g", int(100 * (lo + 0.5 * (hi - lo))) / 100 }')
    expect_rc 0 "$label --target-bits $B" "$SPQR" quantize "$model" -o "$TMP/w.spqr" "${C[@]}" --target-bits "$B" "$@"
    "$SPQR" info "$TMP/w.spqr" >"$TMP/info" 2>&1
    file=$(sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p' "$TMP/info")
    near "$file" "$B" && ok "$label: whole file $file bits for target $B (range $lo to $hi)" \
        || bad "$label: whole file $file bits, target $B (range $lo to $hi)"
}
G=$ROOT/tests/fixtures/tiny_gqa
T=$ROOT/tests/fixtures/tiny_tied
whole_case "tiny_gqa defaults (head, embedding quantized)" "$G"
# the embedding is an item of the allocation: a setting of the grid, and at the
# bottom of the range (every item at its cheapest) the cheapest one, w2 g128
grep -Eq '^model\.embed_tokens\.weight .* w[2-8] g[0-9]+ (f16|q3)' "$TMP/info" && grep -Eq '^lm_head\.weight .* w[2-8] g' "$TMP/info" \
    && ok "tiny_gqa: the embedding and the head got settings" \
    || bad "tiny_gqa: embedding/head settings: $(grep -E '^(model\.embed_tokens|lm_head)' "$TMP/info" | head -3)"
read -r lo hi <<<"$(range "$G" --target-bits 1)"
B=$(awk -v lo="$lo" 'BEGIN { printf "%.2f", int(100 * lo + 1) / 100 }')
expect_rc 0 "tiny_gqa --target-bits $B (bottom of the range)" "$SPQR" quantize "$G" -o "$TMP/lo.spqr" "${C[@]}" --target-bits "$B"
"$SPQR" info "$TMP/lo.spqr" >"$TMP/info" 2>&1
grep -Eq '^model\.embed_tokens\.weight .* w2 g128 f16' "$TMP/info" && ok "tiny_gqa: at $B bits the embedding is at w2 g128" \
    || bad "tiny_gqa: at $B bits: $(grep -E '^model\.embed_tokens' "$TMP/info")"
whole_case "tiny_gqa --dense-embed" "$G" --dense-embed
whole_case "tiny_gqa --dense-head" "$G" --dense-head
whole_case "tiny_tied defaults (one shared table)" "$T"
grep -Eq '^model\.embed_tokens\.weight .* w[2-8] g' "$TMP/info" && ! grep -q '^lm_head\.weight' "$TMP/info" \
    && ok "tiny_tied: the shared table got a setting, no separate head" \
    || bad "tiny_tied: shared table: $(grep -E '^(model\.embed_tokens|lm_head)' "$TMP/info" | head -3)"
# a sweep of whole-file budgets on the shared table, whose coarse last item (the
# 19456-weight table after 21 linears of 2-6k weights) once left 5 bits 0.031 short
for B in 4.5 5 5.5 6; do
    expect_rc 0 "tiny_tied --target-bits $B" "$SPQR" quantize "$T" -o "$TMP/s.spqr" --calib "$ROOT/data/calib.txt" \
        --nsamples 8 --seqlen 64 -t 2 -q --target-bits "$B"
    "$SPQR" info "$TMP/s.spqr" >"$TMP/info" 2>&1
    file=$(sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p' "$TMP/info")
    near "$file" "$B" && ok "tiny_tied (8 x 64 windows): whole file $file bits for target $B" \
        || bad "tiny_tied (8 x 64 windows): whole file $file bits, target $B"
done
whole_case "tiny_tied --tied-two-tables" "$T" --tied-two-tables
grep -Eq '^model\.embed_tokens\.weight .* w[2-8] g' "$TMP/info" && grep -Eq '^lm_head\.weight .* w[2-8] g' "$TMP/info" \
    && ok "tiny_tied --tied-two-tables: each table got its own setting" \
    || bad "tiny_tied two tables: $(grep -E '^(model\.embed_tokens|lm_head)' "$TMP/info" | head -3)"
whole_case "tiny_tied --dense-embed" "$T" --dense-embed
whole_case "tiny_tied --dense-head" "$T" --dense-head
whole_case "tiny_tied --dense-head --dense-embed" "$T" --dense-head --dense-embed

# 2. quantized linears alone, with the head allocated too (tied embeddings)
model=$ROOT/tests/fixtures/tiny_tied
for B in 3.5 4.5; do
    expect_rc 0 "tiny_tied --target-bits-linears $B --quantize-head" "$SPQR" quantize "$model" -o "$TMP/t.spqr" "${C[@]}" \
        --target-bits-linears "$B" --quantize-head
    "$SPQR" info "$TMP/t.spqr" >"$TMP/info" 2>&1
    lin=$(sed -nE 's/^allocated linears: .* ([0-9.]+) bits\/param measured.*/\1/p' "$TMP/info")
    near "$lin" "$B" && ok "tiny_tied: linears $lin bits for target $B" || bad "tiny_tied: linears $lin bits, target $B"
    # one shared table (the defaults): the head is stored as the embedding
    grep -Eq '^(lm_head|model\.embed_tokens)\.weight .* w[2-8] g' "$TMP/info" && ok "tiny_tied: the head got a setting" \
        || bad "tiny_tied: no setting for lm_head"
done

# 3. bad values: usage errors, one line
expect_rc 2 "--target-bits abc" "$SPQR" quantize "$model" -o "$TMP/x.spqr" "${C[@]}" --target-bits abc
expect_rc 2 "--target-bits 0" "$SPQR" quantize "$model" -o "$TMP/x.spqr" "${C[@]}" --target-bits 0
expect_rc 2 "both targets" "$SPQR" quantize "$model" -o "$TMP/x.spqr" "${C[@]}" --target-bits 9 --target-bits-linears 3
[ "$(wc -l <"$TMP/err")" -eq 1 ] && ok "one-line usage error" || bad "usage error: $(cat "$TMP/err")"
[ -e "$TMP/x.spqr" ] && bad "an output was written" || ok "no output written"

# 4. SIGINT after block 0, --resume: the identical file (the measurement and the
# embedding's allocated table are redone, deterministically)
if [ -x "$GEN" ]; then
    "$GEN" "$TMP/syn" --layers 6 --hidden 128 --inter 320 --heads 4 --kv-heads 2 --vocab 300 --ctx 256 \
        --tokenizer "$ROOT/tests/fixtures/tiny_gqa/tokenizer.json" >/dev/null 2>&1
    S=(quantize "$TMP/syn" --calib "$TMP/calib.txt" --nsamples 64 --seqlen 64 -t 2 -q --preset 3.5bit)
    expect_rc 0 "synthetic: uninterrupted reference run" "$SPQR" "${S[@]}" -o "$TMP/ref.spqr"
    "$SPQR" "${S[@]}" -o "$TMP/b.spqr" >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    for _ in $(seq 1 2400); do [ -e "$TMP/b.spqr.partial/block_0000.spqr" ] && break; sleep 0.05; done
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    [ "$rc" -eq 130 ] && ok "SIGINT exits 130" || bad "SIGINT: exit $rc, want 130 ($(cat "$TMP/err"))"
    expect_rc 0 "--resume finishes" "$SPQR" "${S[@]}" -o "$TMP/b.spqr" --resume
    grep -Eq '[1-9][0-9]* block\(s\) restored' "$TMP/out" && ok "resume restored blocks" || bad "nothing restored: $(tail -2 "$TMP/out")"
    cmp -s "$TMP/ref.spqr" "$TMP/b.spqr" && ok "resumed file identical to the uninterrupted one" || bad "resumed file differs"
    "$SPQR" info "$TMP/ref.spqr" >"$TMP/info" 2>&1
    file=$(sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p' "$TMP/info")
    near "$file" 3.5 && ok "synthetic: --preset 3.5bit: whole file $file bits" || bad "synthetic: --preset 3.5bit: whole file $file bits"
    grep -Eq '^model\.embed_tokens\.weight .* w[2-8] g' "$TMP/info" && ok "synthetic: the embedding got a setting" \
        || bad "synthetic: no setting for the embedding"
    # named budgets are their names in whole-file bits; the fixed recipe keeps its knobs
    expect_rc 0 "synthetic: --preset 3.6bit" "$SPQR" quantize "$TMP/syn" -o "$TMP/p.spqr" --calib "$TMP/calib.txt" \
        --nsamples 8 --seqlen 64 -t 2 -q --preset 3.6bit
    "$SPQR" info "$TMP/p.spqr" >"$TMP/info" 2>&1
    file=$(sed -nE 's/^whole file: ([0-9.]+) bits per model parameter.*/\1/p' "$TMP/info")
    near "$file" 3.6 && ok "synthetic: --preset 3.6bit: whole file $file bits" || bad "synthetic: --preset 3.6bit: whole file $file bits"
    expect_rc 0 "synthetic: --recipe paper-w3" "$SPQR" quantize "$TMP/syn" -o "$TMP/p.spqr" --calib "$TMP/calib.txt" \
        --nsamples 8 --seqlen 64 -t 2 -q --recipe paper-w3
    "$SPQR" info "$TMP/p.spqr" >"$TMP/info" 2>&1
    grep -q 'wbits=3' "$TMP/info" && ! grep -q '^target:' "$TMP/info" && ok "synthetic: paper-w3 is the fixed w3 recipe" \
        || bad "synthetic: paper-w3: $(grep -E 'wbits|^target' "$TMP/info" | head -2)"
else
    bad "gen_synthetic_llama not found next to $SPQR"
fi
exit $fails
