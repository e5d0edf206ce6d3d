#!/bin/bash
# Inputs that are FIFOs (or other non-regular files) must be refused at
# once with a line naming the kind, by every command and for every file a
# model directory holds, never block in open().
# Usage: bash cli_fifo.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
FIX=$ROOT/tests/fixtures
MODEL=$FIX/tiny_gqa
TMP=$(mktemp -d /tmp/spqr_cli_fifo.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh" || exit 1 # ok, bad, expect_rc; counts $fails
T="timeout 20" # a hang exits 124 and fails the rc check
one_line() { # cmd-name description: stderr is exactly one "spqr: ..." line that says FIFO
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^spqr: $1" "$TMP/err" && grep -q 'FIFO' "$TMP/err"; then
        ok "$2: one line naming the FIFO"
    else bad "$2: stderr: $(head -c 300 "$TMP/err")"; fi
}
head -c 3000 "$ROOT/data/calib.txt" >"$TMP/text.txt"
mkfifo "$TMP/x.fifo"

# 1. a FIFO given directly as a file argument
expect_rc 1 "info on a FIFO" $T "$SPQR" info "$TMP/x.fifo"; one_line "info: " "info"
expect_rc 1 "quantize-matrix on a FIFO" $T "$SPQR" quantize-matrix "$TMP/x.fifo" -o "$TMP/o.safetensors"
one_line "" "quantize-matrix"
expect_rc 1 "perplexity -f FIFO" $T "$SPQR" perplexity "$MODEL" -f "$TMP/x.fifo" -t 2; one_line "perplexity: " "perplexity -f"
expect_rc 1 "perplexity --kl FIFO" $T "$SPQR" perplexity "$MODEL" -f "$TMP/text.txt" -c 32 --chunks 1 -t 2 \
    --kl "$TMP/x.fifo"
one_line "perplexity: " "perplexity --kl"
expect_rc 1 "quantize --calib FIFO" $T "$SPQR" quantize "$MODEL" -o "$TMP/q.spqr" --calib "$TMP/x.fifo" -q
one_line "quantize: " "quantize --calib"
for cmd in generate perplexity bench; do
    args=(-p hi --temp 0); [ $cmd = perplexity ] && args=(-f "$TMP/text.txt"); [ $cmd = bench ] && args=()
    expect_rc 1 "$cmd with a FIFO as the model" $T "$SPQR" $cmd "$TMP/x.fifo" "${args[@]}"
    one_line "$cmd: " "$cmd MODEL=FIFO"
done

# 2. a FIFO in place of each file of a model directory
fifo_in() { # fixture file: copy of the fixture with file replaced by a FIFO, in $TMP/m
    rm -rf "$TMP/m" && cp -r "$FIX/$1" "$TMP/m" && rm "$TMP/m/$2" && mkfifo "$TMP/m/$2"
}
for f in model.safetensors config.json tokenizer.json; do
    fifo_in tiny_gqa $f
    expect_rc 1 "generate, $f is a FIFO" $T "$SPQR" generate "$TMP/m" -p hi --temp 0
    one_line "generate: " "$f FIFO"
    grep -q "m/$f: not a regular file (a FIFO)" "$TMP/err" && ok "$f: names the file" || bad "$f: $(cat "$TMP/err")"
    grep -q 'neither' "$TMP/err" && bad "$f: still says neither ... nor" || ok "$f: no 'neither ... nor'"
done
for f in model-00002-of-00002.safetensors model.safetensors.index.json; do
    fifo_in tiny_tied $f
    expect_rc 1 "perplexity, sharded $f is a FIFO" $T "$SPQR" perplexity "$TMP/m" -f "$TMP/text.txt" -t 2
    one_line "perplexity: " "sharded $f FIFO"
    expect_rc 1 "quantize, sharded $f is a FIFO" $T "$SPQR" quantize "$TMP/m" -o "$TMP/q.spqr" --calib "$TMP/text.txt" -q
    one_line "quantize: " "quantize sharded $f FIFO"
done
# a directory named model.safetensors is not "missing" either
rm -rf "$TMP/m" && cp -r "$MODEL" "$TMP/m" && rm "$TMP/m/model.safetensors" && mkdir "$TMP/m/model.safetensors"
expect_rc 1 "model.safetensors is a directory" $T "$SPQR" generate "$TMP/m" -p hi --temp 0
grep -q 'model.safetensors: not a regular file (a directory)' "$TMP/err" && ok "directory named as such" \
    || bad "directory shard: $(cat "$TMP/err")"

[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
exit $((fails > 0))
