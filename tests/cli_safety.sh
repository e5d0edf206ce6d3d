#!/bin/bash
# The output rules (docs/safety.md): what -o / --kl-base may overwrite, the
# lock on OUT.spqr.partial, checks done before block 1, stale temporaries.
# Usage: bash cli_safety.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
GEN=$(dirname "$SPQR")/gen_synthetic_llama
TMP=$(mktemp -d /tmp/spqr_cli_safety.XXXXXX)
MNT=""
cleanup() { [ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh" || exit 1 # ok, bad, expect_rc; counts $fails
one_line() { # description prefix: stderr is one line starting with "spqr: PREFIX"
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^spqr: $2" "$TMP/err"; then ok "$1: one line"
    else bad "$1: stderr: $(head -c 300 "$TMP/err")"; fi
}
says() { grep -q -- "$2" "$TMP/err" && ok "$1 says '$2'" || bad "$1: stderr lacks '$2': $(head -c 300 "$TMP/err")"; }

cp -r "$ROOT/tests/fixtures/tiny_gqa" "$TMP/m"
M=$TMP/m
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
sum_model() { cat "$M"/* "$TMP/calib.txt" | cksum; }
BEFORE=$(sum_model)
Q=(quantize "$M" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -t 2 -q)

# 1. -o never replaces an input, a foreign file (without --force), a directory, a device or a FIFO
for f in "$M/model.safetensors" "$M/config.json" "$M/tokenizer.json" "$TMP/calib.txt"; do
    n=$(basename "$f")
    expect_rc 1 "-o $n (an input)" "$SPQR" "${Q[@]}" -o "$f"; one_line "-o $n" "quantize: "
    expect_rc 1 "-o $n --force (an input)" "$SPQR" "${Q[@]}" -o "$f" --force; says "-o $n --force" "same file as the input"
done
ln "$TMP/calib.txt" "$TMP/hardlink.spqr"
expect_rc 1 "-o a hard link to the calibration text" "$SPQR" "${Q[@]}" -o "$TMP/hardlink.spqr" --force
says "hard link" "same file as the input"
[ "$(sum_model)" = "$BEFORE" ] && ok "model and calibration text intact" || bad "an input was modified"
# a name whose temporary would not fit NAME_MAX is refused before block 1, not after the work
LONG=$TMP/$(printf 'a%.0s' $(seq 240)).spqr
expect_rc 1 "-o a 245-byte name" "$SPQR" "${Q[@]}" -o "$LONG"; one_line "-o 245-byte name" "quantize: "
says "-o 245-byte name" "at most 243 fit"
[ -z "$(ls -A "$TMP" | grep '^\.\?aaaa')" ] && ok "nothing left behind for the long name" || bad "long name left: $(ls -A "$TMP")"
echo "my notes" >"$TMP/notes.txt"
expect_rc 1 "-o a foreign file" "$SPQR" "${Q[@]}" -o "$TMP/notes.txt"; one_line "-o notes.txt" "quantize: "
says "-o notes.txt" "--force"
[ "$(cat "$TMP/notes.txt")" = "my notes" ] && ok "foreign file intact" || bad "foreign file changed"
expect_rc 0 "-o a foreign file --force" "$SPQR" "${Q[@]}" -o "$TMP/notes.txt" --force
head -c 7 "$TMP/notes.txt" | grep -q SPQRMDL && ok "--force replaced it with a .spqr" || bad "--force did not replace"
expect_rc 0 "-o an existing .spqr (ours) without --force" "$SPQR" "${Q[@]}" -o "$TMP/notes.txt"
mkfifo "$TMP/fifo"
expect_rc 1 "-o a FIFO" timeout 20 "$SPQR" "${Q[@]}" -o "$TMP/fifo" --force; says "-o FIFO" "is a FIFO"
[ -p "$TMP/fifo" ] && ok "the FIFO is still a FIFO" || bad "the FIFO was replaced"
expect_rc 1 "-o /dev/null --force" "$SPQR" "${Q[@]}" -o /dev/null --force; says "-o /dev/null" "character device"
[ -c /dev/null ] && ok "/dev/null is still a device" || bad "/dev/null was replaced"
ln -s /dev/null "$TMP/devlink"
expect_rc 1 "-o a symlink to /dev/null" "$SPQR" "${Q[@]}" -o "$TMP/devlink" --force; says "-o symlink" "symlink to a character device"
mkdir "$TMP/outdir"
expect_rc 1 "-o a directory" "$SPQR" "${Q[@]}" -o "$TMP/outdir"; says "-o dir" "directory"
expect_rc 1 "-o dir/" "$SPQR" "${Q[@]}" -o "$TMP/outdir/"; says "-o dir/" "directory"
[ -z "$(ls -A "$TMP/outdir")" ] && ok "-o dir/ left nothing in dir (no dir/.partial)" || bad "-o dir/ left: $(ls -A "$TMP/outdir")"
[ ! -e "$TMP/outdir.partial" ] && ok "no outdir.partial" || bad "outdir.partial created"

# quantize-matrix -o and perplexity --kl-base follow the same rules
LAYER=$ROOT/tests/fixtures/layer_cli.safetensors
cp "$LAYER" "$TMP/layer.safetensors"
expect_rc 1 "quantize-matrix -o its input" "$SPQR" quantize-matrix "$TMP/layer.safetensors" -o "$TMP/layer.safetensors" --force
says "quantize-matrix -o input" "same file as the input"
cmp -s "$LAYER" "$TMP/layer.safetensors" && ok "quantize-matrix input intact" || bad "quantize-matrix input changed"
expect_rc 1 "quantize-matrix -o a FIFO" timeout 20 "$SPQR" quantize-matrix "$LAYER" -o "$TMP/fifo"; says "quantize-matrix FIFO" "is a FIFO"
TEXT=$ROOT/tests/fixtures/model_text.txt
expect_rc 1 "--kl-base config.json" "$SPQR" perplexity "$M" -f "$TEXT" -c 32 --kl-base "$M/config.json" --force
says "--kl-base config.json" "same file as the input"
expect_rc 1 "--kl-base a foreign file" "$SPQR" perplexity "$M" -f "$TEXT" -c 32 --kl-base "$TMP/calib.txt"
expect_rc 1 "--kl-base /dev/null" "$SPQR" perplexity "$M" -f "$TEXT" -c 32 --kl-base /dev/null --force
[ -c /dev/null ] && ok "/dev/null is still a device" || bad "/dev/null was replaced"
[ "$(sum_model)" = "$BEFORE" ] && ok "inputs intact after the refusals" || bad "an input was modified"
(umask 027 && "$SPQR" perplexity "$M" -f "$TEXT" -c 32 --kl-base "$TMP/base.kl" >/dev/null 2>&1) \
    && ok "--kl-base with umask 027" || bad "--kl-base failed"
[ "$(stat -c %a "$TMP/base.kl")" = 640 ] && ok "--kl-base file mode follows the umask (640)" \
    || bad "--kl-base mode $(stat -c %a "$TMP/base.kl"), want 640"
# closed standard streams: the file opened next must not become "stderr" (progress text had
# landed inside the --kl-base file); a full stdout is an error, not a silent success
"$SPQR" perplexity "$M" -f "$TEXT" -c 32 --kl-base "$TMP/closed.kl" 2>&- >&- <&-
cmp -s "$TMP/base.kl" "$TMP/closed.kl" && ok "--kl-base with 0/1/2 closed: the same bytes" || bad "--kl-base with closed fds differs"
expect_rc 1 "stdout is /dev/full" bash -c '"$0" --help >/dev/full' "$SPQR"
says "stdout is /dev/full" "error writing to standard output"
expect_rc 0 "--kl-base replaces its own kind" "$SPQR" perplexity "$M" -f "$TEXT" -c 32 --kl-base "$TMP/base.kl"
(umask 022 && "$SPQR" "${Q[@]}" -o "$TMP/mode.spqr" >/dev/null 2>&1)
[ "$(stat -c %a "$TMP/mode.spqr")" = 644 ] && ok ".spqr mode follows the umask (644)" || bad ".spqr mode $(stat -c %a "$TMP/mode.spqr")"

# 3. problems found before block 1, not after all the work
bad_model() { # name: a copy of the model to break
    rm -rf "$TMP/$1"; cp -r "$M" "$TMP/$1"
}
bad_model stray; printf '}' >>"$TMP/stray/config.json"
expect_rc 1 "config.json with a stray '}'" "$SPQR" quantize "$TMP/stray" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -o "$TMP/s.spqr"
says "stray }" "config.json"
grep -q 'block 1/' "$TMP/err" && bad "stray }: the run started before failing" || ok "stray }: refused before block 1"
expect_rc 1 "perplexity refuses the same config" "$SPQR" perplexity "$TMP/stray" -f "$TEXT" -c 32
bad_model utf; printf '{"x": "\xff\xfe",' | cat - <(tail -c +2 "$M/config.json") >"$TMP/utf/config.json"
expect_rc 1 "config.json with invalid UTF-8" "$SPQR" quantize "$TMP/utf" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -o "$TMP/s.spqr"
says "invalid UTF-8" "UTF-8"
bad_model nul; printf '\0' >>"$TMP/nul/tokenizer.json"
expect_rc 1 "tokenizer.json with a NUL" "$SPQR" quantize "$TMP/nul" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -o "$TMP/s.spqr"
says "NUL" "NUL"
[ ! -e "$TMP/s.spqr" ] && [ ! -e "$TMP/s.spqr.partial" ] && ok "no output and no .partial after the refusals" \
    || bad "left $(ls "$TMP" | grep s.spqr)"
# OUT.spqr.partial planted as a symlink to another directory: refused, that directory untouched
mkdir "$TMP/victim" && echo x >"$TMP/victim/block_0000.spqr" && echo y >"$TMP/victim/lock"
ln -s "$TMP/victim" "$TMP/v.spqr.partial"
expect_rc 1 ".partial is a symlink" "$SPQR" quantize "$M" --calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -o "$TMP/v.spqr"
says ".partial is a symlink" "symbolic link"
[ "$(cat "$TMP/victim/block_0000.spqr" "$TMP/victim/lock")" = "$(printf 'x\ny')" ] && [ ! -e "$TMP/v.spqr" ] &&
    ok "the symlink's target is untouched" || bad "victim dir now: $(ls "$TMP/victim")"
# a file system without room for the run: refused before block 1 (needs root for the tmpfs)
if [ "$(id -u)" -eq 0 ] && mkdir -p "$TMP/small" && mount -t tmpfs -o size=64k tmpfs "$TMP/small" 2>/dev/null; then
    MNT=$TMP/small
    expect_rc 1 "an output file system without room" "$SPQR" "${Q[@]}" -o "$TMP/small/x.spqr"
    says "full disk" "not enough disk space"
    [ -z "$(ls -A "$TMP/small")" ] && ok "nothing left on the small file system" || bad "left: $(ls -A "$TMP/small")"
    # the real write running out of space (quantize-matrix has no estimate): clean failure, no temporary
    cat /dev/zero >"$TMP/small/fill" 2>/dev/null # fills it
    expect_rc 1 "quantize-matrix onto a full disk" "$SPQR" quantize-matrix "$LAYER" -o "$TMP/small/q.safetensors"
    [ "$(ls -A "$TMP/small")" = fill ] && ok "full disk: no partial file or temporary left" || bad "full disk left: $(ls -A "$TMP/small")"
    umount "$TMP/small" && MNT=""
else
    echo "skip: tmpfs checks need root and mount"
fi

# 2 and 6. the lock, the run hash at assembly, stale temporaries
if [ -x "$GEN" ]; then
    "$GEN" "$TMP/syn" --layers 8 --hidden 128 --inter 320 --heads 4 --kv-heads 2 --vocab 300 --ctx 256 \
        --tokenizer "$M/tokenizer.json" >/dev/null 2>&1
    S=(quantize "$TMP/syn" --calib "$TMP/calib.txt" --nsamples 160 --seqlen 128 -t 2 -q)
    wait_for() { for _ in $(seq 1 1200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
    # a second run on the same -o fails at once, naming the first run's pid
    "$SPQR" "${S[@]}" -o "$TMP/a.spqr" --wbits 4 >/dev/null 2>"$TMP/a.err" &
    pa=$!
    wait_for "$TMP/a.spqr.partial/lock"
    expect_rc 1 "a second run on the same -o" timeout 30 "$SPQR" "${S[@]}" -o "$TMP/a.spqr" --wbits 2
    says "second run" "in use by another spqr run (pid $pa)"
    one_line "second run" "quantize: "
    wait "$pa" && ok "the first run finishes" || bad "the first run failed: $(cat "$TMP/a.err")"
    "$SPQR" info "$TMP/a.spqr" >"$TMP/info" 2>&1
    grep -q 'wbits=4' "$TMP/info" && ! grep -q 'wbits=2' "$TMP/info" && ok "its file is all wbits 4" || bad "mixed file: $(grep wbits "$TMP/info" | head -3)"
    # a block checkpoint of another run slipped in before assembly is refused, not mixed in
    "$SPQR" "${S[@]}" -o "$TMP/b.spqr" --wbits 2 >/dev/null 2>&1 &
    pb=$!
    wait_for "$TMP/b.spqr.partial/inputs_0000.spqr"
    kill -INT "$pb"; wait "$pb" 2>/dev/null
    [ -e "$TMP/b.spqr.partial/block_0000.spqr" ] && ok "run B left block 0" || bad "run B left no block 0"
    "$SPQR" "${S[@]}" -o "$TMP/c.spqr" --wbits 4 >/dev/null 2>"$TMP/c.err" &
    pc=$!
    wait_for "$TMP/c.spqr.partial/block_0001.spqr"
    cp "$TMP/b.spqr.partial/block_0000.spqr" "$TMP/c.spqr.partial/swap" && mv "$TMP/c.spqr.partial/swap" "$TMP/c.spqr.partial/block_0000.spqr"
    wait "$pc"
    rc=$?
    [ "$rc" -eq 1 ] && grep -q "another run" "$TMP/c.err" && ok "assembly refuses another run's checkpoint (exit 1)" \
        || bad "assembly with another run's block: exit $rc, $(cat "$TMP/c.err")"
    [ ! -e "$TMP/c.spqr" ] && ok "no mixed file written" || bad "a mixed file was written"
    # SIGKILL mid-run, temporaries left as a kill during a write leaves them: --resume removes them
    "$SPQR" "${S[@]}" -o "$TMP/d.spqr" >/dev/null 2>&1 &
    pd=$!
    wait_for "$TMP/d.spqr.partial/inputs_0001.spqr"
    kill -KILL "$pd"; wait "$pd" 2>/dev/null
    head -c 100000 /dev/zero >"$TMP/d.spqr.partial/.inputs_0002.spqr.tmp.Ab3xYz"
    head -c 1000 /dev/zero >"$TMP/.d.spqr.tmp.Q1w2E3"
    echo keep >"$TMP/.d.spqr.tmp.notours"
    expect_rc 0 "--resume after SIGKILL" "$SPQR" "${S[@]}" -o "$TMP/d.spqr" --resume
    [ ! -e "$TMP/d.spqr.partial" ] && ok "--resume removed the checkpoint dir and its stale temporaries" \
        || bad "left: $(ls -A "$TMP/d.spqr.partial")"
    [ ! -e "$TMP/.d.spqr.tmp.Q1w2E3" ] && ok "stale output temporary removed" || bad "stale output temporary left"
    [ -e "$TMP/.d.spqr.tmp.notours" ] && ok "a file that only looks similar is kept" || bad "removed a file not ours"
else
    bad "gen_synthetic_llama not found next to $SPQR"
fi

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
