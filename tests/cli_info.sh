#!/bin/bash
# `spqr info` on hostile .spqr files: strings from the file never reach the
# terminal raw (control characters are printed escaped), and a file with
# many tensors and many metadata layer records is described in linear-ish
# time (each tensor's record used to be found by walking all of them).
# Usage: bash cli_info.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
GEN=$(dirname "$SPQR")/gen_hostile
TMP=$(mktemp -d /tmp/spqr_cli_info.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. "$ROOT/tests/lib.sh"

# 1. ESC, BEL, newline and a C1 CSI in the config, the metadata (a value, a
#    knob name, a knob value) and a tensor name come out escaped
if "$GEN" spqr "$TMP/ctl.spqr" --tensors 3 --layers 5 --control; then
    expect_rc 0 "info on a file whose strings hold control characters" "$SPQR" info "$TMP/ctl.spqr"
    if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/out"; then bad "raw control bytes in the output"
    else ok "no raw control bytes"; fi
    if LC_ALL=C grep -q $'\xc2[\x80-\x9f]' "$TMP/out"; then bad "raw C1 control in the output"
    else ok "no raw C1 control"; fi
    for want in 'config: llama\x1b[31m\nFAKE, ' 'preset: x\x1b]0;pwned\x07\ny' 'knobs: wbits=2 k\x1bey=v\nal\u009b2J' \
        'evil\x1b[2J\nname.weight'; do
        if grep -qF -- "$want" "$TMP/out"; then ok "escaped: $want"; else bad "missing escaped text: $want"; fi
    done
    if grep -qE '^(FAKE|y|name\.weight|al)' "$TMP/out"; then bad "a string from the file broke a line"
    else ok "no line broken by a string from the file"; fi
else
    bad "gen_hostile spqr --control failed"
fi

# 2. scale: 1000 tensors, 200000 layer records (~23 MB); the records of the
#    tensors come last. The old per-tensor walk took > 30 s of CPU on it;
#    now about 0.5 s (1.2 s under ASan).
if "$GEN" spqr "$TMP/big.spqr" --tensors 1000 --layers 200000; then
    run_cpu timeout 120 "$SPQR" info "$TMP/big.spqr"
    [ "$rc" -eq 0 ] && ok "info on 1000 tensors x 200000 layer records" || bad "info on the big file: exit $rc"
    expect_cpu 10 "info on 1000 tensors x 200000 layer records"
    if grep -qE '^model\.layers\.199000\.mlp\.down_proj\.weight +1x1 .* 0\.99500$' "$TMP/out"; then
        ok "a tensor's rel.err found among 200000 records"
    else
        bad "rel.err of model.layers.199000 not 0.99500: $(grep -F 'model.layers.199000.' "$TMP/out")"
    fi
    [ "$(grep -c '^model\.layers\.' "$TMP/out")" -eq 1000 ] && ok "1000 tensor rows" || bad "not 1000 tensor rows"
else
    bad "gen_hostile spqr failed"
fi

# 3. more layer records than a .spqr can have tensors (2^20): one-line error
if "$GEN" spqr "$TMP/many.spqr" --tensors 1 --layers 1100000 --bare; then
    expect_rc 1 "info on 1100000 layer records" timeout 120 "$SPQR" info "$TMP/many.spqr"
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
        grep -q '^spqr: info: .*metadata lists more than 1048576 layer records' "$TMP/err"; then
        ok "layer record limit: one-line error"
    else
        bad "layer record limit: $(head -c 300 "$TMP/err")"
    fi
    [ -s "$TMP/out" ] && bad "output printed before the error" || ok "nothing printed before the error"
else
    bad "gen_hostile spqr --bare failed"
fi

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
