#!/bin/bash
# `spqr generate` stops at any of the model's EOS ids: the second id of a
# config.json list, an id generation_config.json adds, and the same from a
# .spqr quantized from that directory (its config section keeps the set).
# Usage: bash cli_generate_eos.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
TMP=$(mktemp -d /tmp/spqr_cli_eos.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh"

M=$TMP/m
mkdir "$M"
cp "$ROOT/tests/fixtures/tiny_gqa/"* "$M/"
GEN=(generate --temp 0 -t 1 -p Hello)

# The first greedy token of a model: generate one, map its bytes to the id
# through the byte-level vocabulary (GPT-2's byte -> character table).
first_id() { # model: prints the id
    "$SPQR" generate "$1" "${GEN[@]:1}" -n 1 >"$TMP/first" 2>/dev/null || return 1
    /usr/bin/python3 - "$TMP/first" "$M/tokenizer.json" <<'PY'
import json, sys
out = open(sys.argv[1], "rb").read()
assert out.startswith(b"Hello") and out.endswith(b"\n"), out
piece = out[len(b"Hello"):-1]
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
b2c = dict(zip(bs, map(chr, cs)))
vocab = json.load(open(sys.argv[2], encoding="utf-8"))["model"]["vocab"]
print(vocab["".join(b2c[b] for b in piece)])
PY
}
X=$(first_id "$M")
if [ -n "$X" ]; then ok "first greedy token is id $X"; else bad "could not find the first token's id"; X=1; fi
A=$((X == 299 ? 298 : 299)) # another id, never the first token

stopped() { # description: the run printed the prompt alone and generated 0 tokens
    if [ "$(cat "$TMP/out")" = "Hello" ] && grep -q 'generation: 0 tokens' "$TMP/err"; then ok "$1: stopped at once"
    else bad "$1: did not stop: $(head -c 200 "$TMP/out") / $(tail -n 1 "$TMP/err")"; fi
}
cp "$M/config.json" "$TMP/config.orig"
set_eos() { sed "s/\"eos_token_id\": 0,/\"eos_token_id\": $1,/" "$TMP/config.orig" >"$M/config.json"; }

set_eos "$A"
expect_rc 0 "eos $A only" "$SPQR" "${GEN[0]}" "$M" "${GEN[@]:1}" -n 3
grep -q 'generation: 3 tokens' "$TMP/err" && ok "an id that is not generated does not stop it" || bad "eos $A: $(tail -n 1 "$TMP/err")"

set_eos "[$A, $X]"
expect_rc 0 "eos list [$A, $X]" "$SPQR" "${GEN[0]}" "$M" "${GEN[@]:1}" -n 3
stopped "second id of the config.json list"

set_eos "$A"
printf '{"eos_token_id": [%d, %d]}\n' "$A" "$X" >"$M/generation_config.json"
expect_rc 0 "generation_config.json adds $X" "$SPQR" "${GEN[0]}" "$M" "${GEN[@]:1}" -n 3
stopped "id from generation_config.json"

# Quantization does not depend on the EOS ids: quantize once to learn the
# quantized model's first token, then again with it in generation_config.json.
set_eos 0
rm "$M/generation_config.json"
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
QZ=(quantize --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -t 2 -q)
expect_rc 0 "quantize" "$SPQR" "${QZ[0]}" "$M" "${QZ[@]:1}" -o "$TMP/q1.spqr"
XQ=$(first_id "$TMP/q1.spqr")
if [ -n "$XQ" ] && [ "$XQ" != 0 ]; then ok "quantized first token is id $XQ"; else bad "no first token (other than eos 0) from the .spqr"; XQ=1; fi
A=$((XQ == 299 ? 298 : 299))
set_eos "$A"
printf '{"eos_token_id": [%d, %d]}\n' "$A" "$XQ" >"$M/generation_config.json"
expect_rc 0 "quantize with generation_config.json" "$SPQR" "${QZ[0]}" "$M" "${QZ[@]:1}" -o "$TMP/q2.spqr"
expect_rc 0 "generate from the .spqr" "$SPQR" "${GEN[0]}" "$TMP/q2.spqr" "${GEN[@]:1}" -n 3
stopped ".spqr keeps generation_config.json's id"
expect_rc 0 "generate from the first .spqr" "$SPQR" "${GEN[0]}" "$TMP/q1.spqr" "${GEN[@]:1}" -n 3
grep -q 'generation: 3 tokens' "$TMP/err" && ok "without that id it runs on" || bad "q1: $(tail -n 1 "$TMP/err")"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
