#!/bin/bash
# CLI-level checks of `spqr quantize` and `spqr info`, and of perplexity /
# generate on a .spqr file. Usage: bash cli_quantize.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
MODEL=$ROOT/tests/fixtures/tiny_gqa
GEN=$(dirname "$SPQR")/gen_synthetic_llama
TMP=$(mktemp -d /tmp/spqr_cli_quant.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
expect_rc() { # expected-rc description command...
    local want=$1 what=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$what (exit $rc)"; else bad "$what: exit $rc, want $want; stderr: $(head -c 300 "$TMP/err")"; fi
}
one_line_error() { # description: stderr is exactly one line starting with "spqr: quantize:"
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: quantize: ' "$TMP/err"; then ok "$1: one-line error"
    else bad "$1: stderr is not one error line: $(head -c 300 "$TMP/err")"; fi
}
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
: >"$TMP/empty.txt"
printf 'hi' >"$TMP/hi.txt"
Q=(quantize "$MODEL" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -t 2 -q)

# 1. bad input: one line, non-zero, no output file
expect_rc 2 "missing --calib" "$SPQR" quantize "$MODEL" -o "$TMP/x.spqr"; one_line_error "missing --calib"
expect_rc 1 "calib file missing" "$SPQR" quantize "$MODEL" -o "$TMP/x.spqr" --calib "$TMP/nope.txt"; one_line_error "calib file missing"
expect_rc 1 "empty calib" "$SPQR" quantize "$MODEL" -o "$TMP/x.spqr" --calib "$TMP/empty.txt"; one_line_error "empty calib"
expect_rc 2 "nsamples 0" "$SPQR" "${Q[@]}" -o "$TMP/x.spqr" --nsamples 0; one_line_error "nsamples 0"
expect_rc 2 "nsamples not a number" "$SPQR" "${Q[@]}" -o "$TMP/x.spqr" --nsamples lots; one_line_error "nsamples lots"
expect_rc 1 "seqlen beyond the model" "$SPQR" "${Q[@]}" -o "$TMP/x.spqr" --seqlen 100000; one_line_error "seqlen 100000"
grep -q 'max_position_embeddings' "$TMP/err" && ok "seqlen error names the limit" || bad "seqlen error: $(cat "$TMP/err")"
expect_rc 1 "calib shorter than one window" "$SPQR" quantize "$MODEL" -o "$TMP/x.spqr" --calib "$TMP/hi.txt" --seqlen 200 -q
one_line_error "short calib"
expect_rc 1 "output directory missing" "$SPQR" "${Q[@]}" -o "$TMP/no/such/dir/x.spqr"; one_line_error "output dir missing"
expect_rc 2 "unknown preset" "$SPQR" "${Q[@]}" -o "$TMP/x.spqr" --preset 2bit; one_line_error "unknown preset"
expect_rc 2 "bad knob" "$SPQR" "${Q[@]}" -o "$TMP/x.spqr" --wbits 12; one_line_error "bad knob"
expect_rc 1 "model dir missing" "$SPQR" quantize "$TMP/nomodel" -o "$TMP/x.spqr" --calib "$TMP/calib.txt"; one_line_error "model missing"
[ ! -e "$TMP/x.spqr" ] && ok "no output after errors" || bad "an output file appeared after errors"
expect_rc 0 "--help" "$SPQR" quantize --help
grep -q 'near-lossless' "$TMP/out" && grep -q -- '--resume' "$TMP/out" && grep -q -- '--quantize-head' "$TMP/out" \
    && ok "--help lists presets, --resume, --quantize-head" || bad "--help incomplete"
grep -qi 'not implemented' "$TMP/out" && bad "--help still calls something not implemented" || ok "--help: no refusal left"

# 2. a successful run: report, info, perplexity and generate on the .spqr
expect_rc 0 "quantize tiny (paper-w3)" "$SPQR" "${Q[@]}" -o "$TMP/a.spqr" --recipe paper-w3
grep -q 'measured from stored bytes' "$TMP/out" && grep -q '^mlp.down_proj ' "$TMP/out" && ok "report table printed" \
    || bad "no report: $(cat "$TMP/out")"
[ ! -e "$TMP/a.spqr.partial" ] && ok "checkpoint dir removed" || bad "checkpoint dir left behind"
expect_rc 0 "info" "$SPQR" info "$TMP/a.spqr"
grep -q 'preset: paper-w3' "$TMP/out" && grep -q 'wbits=3' "$TMP/out" && grep -q 'model.layers.1.mlp.down_proj.weight' "$TMP/out" \
    && ok "info shows preset, knobs, per-layer rows" || bad "info output: $(head -c 600 "$TMP/out")"
expect_rc 1 "info on a non-.spqr file" "$SPQR" info "$TMP/calib.txt"
expect_rc 0 "perplexity of the .spqr" "$SPQR" perplexity "$TMP/a.spqr" -f "$TMP/calib.txt" -c 32 --json -t 2
PQ=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$TMP/out")
expect_rc 0 "perplexity of fp32" "$SPQR" perplexity "$MODEL" -f "$TMP/calib.txt" -c 32 --json -t 2
PF=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$TMP/out")
awk -v a="$PQ" -v b="$PF" 'BEGIN { r = a / b; exit !(r > 0.97 && r < 1.03 && a != b) }' \
    && ok "ppl .spqr $PQ within 3% of fp32 $PF" || bad "ppl .spqr $PQ vs fp32 $PF"
expect_rc 0 "generate from the .spqr" "$SPQR" generate "$TMP/a.spqr" -p "The" -n 8 --temp 0 -t 2
expect_rc 2 "presets other than default" "$SPQR" "${Q[@]}" -o "$TMP/r.spqr" --recipe rtn4 --rtn-typo
expect_rc 0 "rtn4 preset" "$SPQR" "${Q[@]}" -o "$TMP/r.spqr" --recipe rtn4
expect_rc 0 "info rtn4" "$SPQR" info "$TMP/r.spqr"
grep -q 'gptq=0' "$TMP/out" && grep -q 'groupsize=128' "$TMP/out" && ok "rtn4 knobs recorded" || bad "rtn4 knobs: $(head -c 400 "$TMP/out")"
# presets are named budgets, recipes fixed configurations: a name under the other flag is refused
# in one line that names the right flag
expect_rc 2 "--preset of a recipe" "$SPQR" "${Q[@]}" -o "$TMP/r.spqr" --preset paper-w3
grep -q 'use --recipe paper-w3' "$TMP/err" && ok "it names --recipe" || bad "--preset paper-w3: $(cat "$TMP/err")"
expect_rc 2 "--recipe of a budget" "$SPQR" "${Q[@]}" -o "$TMP/r.spqr" --recipe 3.6bit
grep -q 'use --preset 3.6bit' "$TMP/err" && ok "it names --preset" || bad "--recipe 3.6bit: $(cat "$TMP/err")"
expect_rc 2 "a preset and a recipe" "$SPQR" "${Q[@]}" -o "$TMP/r.spqr" --preset 3bit --recipe gptq4
expect_rc 2 "unknown recipe" "$SPQR" "${Q[@]}" -o "$TMP/r.spqr" --recipe gptq9
grep -q 'paper-w3, paper-w4, gptq4, gptq3, rtn4' "$TMP/err" && ok "it lists the recipes" || bad "unknown recipe: $(cat "$TMP/err")"

# 2b. the whole file by default (lm_head and embedding packed); --quantize-head still accepted;
#     --dense-head / --dense-embed keep them 16-bit (untied and tied models), in the report and in info
expect_rc 0 "--quantize-head accepted" "$SPQR" "${Q[@]}" -o "$TMP/h.spqr" --quantize-head
grep -q '^lm_head ' "$TMP/out" && grep -q 'lm_head included' "$TMP/out" && ok "report has the lm_head row" \
    || bad "report without the head: $(cat "$TMP/out")"
expect_rc 0 "info with a packed head" "$SPQR" info "$TMP/h.spqr"
grep -q '^lm_head.weight  *300x72 ' "$TMP/out" && grep -q '^lm_head: packed 300x72' "$TMP/out" \
    && grep -q '^quantize_head: yes' "$TMP/out" && ok "info shows lm_head as packed" || bad "info: $(cat "$TMP/out")"
grep -q '^embedding: packed 300x72' "$TMP/out" && grep -q '^quantize_embed: yes' "$TMP/out" \
    && grep -q '^whole file: [0-9.]* bits per model parameter.*linears only [0-9.]*' "$TMP/out" \
    && ok "info shows the packed embedding and the whole-file bits" || bad "info (embedding): $(grep -i 'embed\|whole' "$TMP/out")"
expect_rc 0 "--dense-head --dense-embed" "$SPQR" "${Q[@]}" -o "$TMP/d.spqr" --dense-head --dense-embed
grep -q '^whole file: [0-9.]* bits per parameter' "$TMP/out" && ok "report has the whole-file bits" || bad "report: $(cat "$TMP/out")"
expect_rc 0 "info without the whole file" "$SPQR" info "$TMP/d.spqr"
grep -q '^lm_head: dense' "$TMP/out" && grep -q '^quantize_head: no' "$TMP/out" && grep -q '^embedding: dense' "$TMP/out" \
    && ok "info shows a dense head and embedding otherwise" || bad "info (no head): $(grep 'lm_head\|embed' "$TMP/out")"
expect_rc 0 "perplexity with head and embedding dense" "$SPQR" perplexity "$TMP/d.spqr" -f "$TMP/calib.txt" -c 32 --json -t 2
PD=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$TMP/out")
awk -v a="$PQ" -v b="$PF" -v c="$PD" 'BEGIN { r = a / b; exit !(r > 0.95 && r < 1.05 && a != c) }' \
    && ok "ppl of the whole file $PQ within 5% of fp32 $PF (head and embedding dense: $PD)" || bad "ppl whole $PQ vs fp32 $PF, dense parts $PD"
expect_rc 0 "a tied model, whole file" "$SPQR" quantize "$ROOT/tests/fixtures/tiny_tied" --calib "$TMP/calib.txt" \
    --nsamples 4 --seqlen 32 -t 2 -q -o "$TMP/t.spqr"
expect_rc 0 "info tied" "$SPQR" info "$TMP/t.spqr"
grep -q '^lm_head: tied: the packed embedding is the head' "$TMP/out" && grep -q '^embedding: packed 304x64' "$TMP/out" \
    && ok "tied: one packed table" || bad "tied info: $(grep -i 'lm_head\|embed' "$TMP/out")"
expect_rc 0 "a tied model, two tables" "$SPQR" quantize "$ROOT/tests/fixtures/tiny_tied" --calib "$TMP/calib.txt" \
    --nsamples 4 --seqlen 32 -t 2 -q -o "$TMP/t1.spqr" --tied-two-tables
expect_rc 0 "info tied, two tables" "$SPQR" info "$TMP/t1.spqr"
grep -q '^lm_head: packed 304x64' "$TMP/out" && grep -q '^embedding: packed 304x64' "$TMP/out" \
    && ok "tied --tied-two-tables: two packed tables" || bad "tied info: $(grep -i 'lm_head\|embed' "$TMP/out")"
expect_rc 0 "generate from the two-table .spqr" "$SPQR" generate "$TMP/t1.spqr" -p "The" -n 4 --temp 0 -t 2
expect_rc 0 "generate from the tied .spqr" "$SPQR" generate "$TMP/t.spqr" -p "The" -n 4 --temp 0 -t 2
expect_rc 0 "tied, --dense-embed" "$SPQR" quantize "$ROOT/tests/fixtures/tiny_tied" --calib "$TMP/calib.txt" \
    --nsamples 4 --seqlen 32 -t 2 -q -o "$TMP/t2.spqr" --dense-embed
expect_rc 0 "info tied, dense embedding" "$SPQR" info "$TMP/t2.spqr"
grep -q '^lm_head: packed 304x64.*tied embeddings' "$TMP/out" && grep -q '^dense tensors (norms, embedding): ' "$TMP/out" \
    && ok "tied --dense-embed: head packed, embedding dense" || bad "tied info: $(grep -i 'lm_head\|embed' "$TMP/out")"
expect_rc 0 "generate from the tied .spqr (dense embedding)" "$SPQR" generate "$TMP/t2.spqr" -p "The" -n 4 --temp 0 -t 2
# 2c. a version-1 file (written before the compact encodings) still loads and scores as it did
expect_rc 0 "perplexity of a version-1 file" "$SPQR" perplexity "$ROOT/tests/fixtures/v1_tiny_gqa.spqr" \
    -f "$ROOT/tests/fixtures/model_text.txt" --json -t 2
P1=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$TMP/out")
awk -v a="$P1" 'BEGIN { exit !(a / 353.409657 > 0.9999 && a / 353.409657 < 1.0001) }' \
    && ok "version-1 file: ppl $P1 as measured by the version-1 build (353.409657)" || bad "version-1 ppl $P1"
expect_rc 0 "info of a version-1 file" "$SPQR" info "$ROOT/tests/fixtures/v1_tiny_gqa.spqr"
grep -q 'format version 1' "$TMP/out" && ok "info names version 1" || bad "info v1: $(grep version "$TMP/out")"

# 3. Ctrl-C: a mid-size synthetic model so there is time to interrupt after block 0.
if [ -x "$GEN" ]; then
    "$GEN" "$TMP/syn" --layers 8 --hidden 128 --inter 320 --heads 4 --kv-heads 2 --vocab 300 --ctx 256 \
        --tokenizer "$MODEL/tokenizer.json" >/dev/null 2>&1
    S=(quantize "$TMP/syn" --calib "$TMP/calib.txt" --nsamples 160 --seqlen 128 -t 2 -q)
    expect_rc 0 "uninterrupted reference run" "$SPQR" "${S[@]}" -o "$TMP/ref.spqr"
    cp "$TMP/a.spqr" "$TMP/b.spqr" # an older .spqr: the kind of file -o may replace
    "$SPQR" "${S[@]}" -o "$TMP/b.spqr" >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    for _ in $(seq 1 600); do [ -e "$TMP/b.spqr.partial/block_0000.spqr" ] && break; sleep 0.05; done
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    [ "$rc" -eq 130 ] && ok "SIGINT exits 130" || bad "SIGINT: exit $rc, want 130 ($(cat "$TMP/err"))"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q -- '--resume' "$TMP/err" && ok "one line naming --resume" \
        || bad "interrupt message: $(cat "$TMP/err")"
    cmp -s "$TMP/a.spqr" "$TMP/b.spqr" && ok "previous output intact" || bad "previous output changed"
    ls "$TMP" | grep -q '\.tmp\.' && bad "temporary file left behind" || ok "no temporary file left"
    expect_rc 0 "--resume finishes" "$SPQR" "${S[@]}" -o "$TMP/b.spqr" --resume
    grep -Eq '[1-9][0-9]* block\(s\) restored' "$TMP/out" && ok "resume restored blocks" || bad "nothing restored: $(tail -2 "$TMP/out")"
    cmp -s "$TMP/ref.spqr" "$TMP/b.spqr" && ok "resumed file identical to the uninterrupted one" || bad "resumed file differs"
    # SIGKILL (no chance to clean up): previous output intact, --resume finishes identically
    cp "$TMP/a.spqr" "$TMP/c.spqr"
    "$SPQR" "${S[@]}" -o "$TMP/c.spqr" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do [ -e "$TMP/c.spqr.partial/inputs_0001.spqr" ] && break; sleep 0.05; done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    cmp -s "$TMP/a.spqr" "$TMP/c.spqr" && ok "SIGKILL: previous output intact" || bad "SIGKILL: previous output changed"
    expect_rc 0 "--resume after SIGKILL" "$SPQR" "${S[@]}" -o "$TMP/c.spqr" --resume
    grep -Eq '[2-9] block\(s\) restored' "$TMP/out" && ok "resume after SIGKILL restored >= 2 blocks" || bad "after SIGKILL: $(tail -1 "$TMP/out")"
    cmp -s "$TMP/ref.spqr" "$TMP/c.spqr" && ok "resumed-after-SIGKILL file identical" || bad "resumed-after-SIGKILL file differs"
else
    bad "gen_synthetic_llama not found next to $SPQR"
fi

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
