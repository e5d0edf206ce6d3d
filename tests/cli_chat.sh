#!/bin/bash
# `spqr chat` and `spqr generate --chat` on the default model given a chat
# template: a conversation keeps its KV cache between turns (only the new
# tokens are fed), Ctrl-C through a pseudo-terminal stops a reply and returns
# to the prompt, Ctrl-D quits, a full context is a message and not a crash,
# and a model without a template (or a template that refuses the
# conversation) is a clear one-line error.
# Usage: bash cli_chat.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
TMP=$(mktemp -d /tmp/spqr_cli_chat.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh"

M=$TMP/m
mkdir "$M"
ln -s "$ROOT/models/default/model.safetensors" "$M/model.safetensors"
cp "$ROOT/models/default/tokenizer.json" "$M/"
# EOS moved to a token this model never says, so that replies run until -n, the context or Ctrl-C
/usr/bin/python3 - "$ROOT/models/default/config.json" "$M/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["eos_token_id"] = 4095
json.dump(c, open(sys.argv[2], "w"))
PY
cat >"$M/tokenizer_config.json" <<'JSON'
{"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": false,
 "chat_template": "{% for m in messages %}{{ bos_token }}{{ m.role | capitalize }}: {{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt %}{{ bos_token }}Assistant:{% endif %}"}
JSON

# --- generate --chat: the reply only, deterministic at --temp 0
expect_rc 0 "generate --chat" "$SPQR" generate "$M" --chat --system "Be brief." -p "Tell me a story." -n 12 --temp 0 -t 1
cp "$TMP/out" "$TMP/gen_chat"
if [ -s "$TMP/gen_chat" ] && ! grep -q "Tell me a story" "$TMP/gen_chat"; then ok "generate --chat prints the reply, not the prompt"
else bad "generate --chat output: $(head -c 200 "$TMP/gen_chat")"; fi
# the same tokens through chat's first turn: same reply
printf 'Tell me a story.\n' | "$SPQR" chat "$M" --system "Be brief." -n 12 --temp 0 -t 1 >"$TMP/chat1" 2>"$TMP/err"
if [ "$(sed -n '1s/^> //p' "$TMP/chat1")" = "$(head -n 1 "$TMP/gen_chat")" ]; then ok "chat's first reply equals generate --chat's"
else bad "chat first reply '$(head -c 100 "$TMP/chat1")' vs generate --chat '$(head -c 100 "$TMP/gen_chat")'"; fi

# --- turns reuse the cache: the second prompt feeds only what is new
printf 'Hello there\nAnd then?\n/exit\n' | "$SPQR" chat "$M" -n 8 --temp 0 -t 1 -v >"$TMP/out" 2>"$TMP/err"
rc=$?
reused=$(grep -o '[0-9]* of them reused' "$TMP/err" | sed -n 2p | cut -d' ' -f1)
if [ "$rc" -eq 0 ] && [ -n "$reused" ] && [ "$reused" -gt 5 ]; then ok "second turn reuses $reused cached tokens"
else bad "cache reuse: rc $rc, stderr: $(head -c 300 "$TMP/err")"; fi

# --- a full context is a message, then /reset starts over
printf 'Talk a lot\nMore\n/reset\nHi\n' | "$SPQR" chat "$M" -c 40 -n 1000 --temp 0 -t 1 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "context of 40 tokens is full" "$TMP/err" && grep -q "no longer fits the context" "$TMP/err" \
   && [ "$(grep -c '^> ' "$TMP/out")" -ge 3 ]; then ok "full context: messages, no crash, /reset continues"
else bad "full context: rc $rc, stderr: $(head -c 300 "$TMP/err")"; fi

# --- a script whose every turn fails (nothing fits -c 8) exits 1
printf 'Hello there, how are you today?\nAnd then?\n' | "$SPQR" chat "$M" -c 8 -n 4 --temp 0 -t 1 >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && ok "every turn failed: exit 1" || bad "every turn failed: rc $rc, stderr: $(head -c 300 "$TMP/err")"

# --- errors
expect_rc 1 "chat without a template" "$SPQR" chat "$ROOT/models/default"
if grep -q "no chat template" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ]; then ok "no-template message"; else bad "no-template: $(cat "$TMP/err")"; fi
expect_rc 1 "generate --chat without a template" "$SPQR" generate "$ROOT/models/default" --chat -p hi -n 2
G=$TMP/g
cp -r "$M" "$G"
cat >"$G/tokenizer_config.json" <<'JSON'
{"chat_template": "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"}
JSON
expect_rc 1 "generate --chat --system on a template that refuses it" "$SPQR" generate "$G" --chat --system s -p hi -n 2
if grep -q "System role not supported" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ]; then ok "raise_exception message reported"
else bad "refusal message: $(cat "$TMP/err")"; fi
printf 'hi\n' | "$SPQR" chat "$G" --system s -n 2 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "System role not supported" "$TMP/err"; then ok "chat stops when the template refuses its system message"
else bad "chat refusal: rc $rc: $(cat "$TMP/err")"; fi
expect_rc 2 "chat without a model" "$SPQR" chat
expect_rc 2 "generate --system without --chat" "$SPQR" generate "$M" -p hi --system s

# --- a .spqr carries the template (and add_bos_token); one quantized without it has none
Q=$TMP/q
mkdir "$Q"
cp "$ROOT/tests/fixtures/tiny_gqa/"* "$Q/"
head -c 6000 "$ROOT/data/calib.txt" >"$TMP/calib.txt"
QZ=(--calib "$TMP/calib.txt" --nsamples 4 --seqlen 32 -t 2 -q)
expect_rc 0 "quantize without tokenizer_config.json" "$SPQR" quantize "$Q" "${QZ[@]}" -o "$TMP/old.spqr"
expect_rc 1 "chat on a .spqr without a template" "$SPQR" generate "$TMP/old.spqr" --chat -p hi -n 2
grep -q "no chat template" "$TMP/err" && ok "old .spqr: no-template message" || bad "old .spqr: $(cat "$TMP/err")"
printf '{"add_bos_token": false, "chat_template": "{%% for m in messages %%}<{{ m.role }}>{{ m.content }}{%% endfor %%}<assistant>"}' >"$Q/tokenizer_config.json"
expect_rc 0 "quantize with a chat template" "$SPQR" quantize "$Q" "${QZ[@]}" -o "$TMP/new.spqr"
"$SPQR" generate "$Q" --chat -p "hi there" -n 6 --temp 0 -t 1 >"$TMP/hf_chat" 2>/dev/null
"$SPQR" generate "$TMP/new.spqr" --chat -p "hi there" -n 6 --temp 0 -t 1 >"$TMP/q_chat" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 0 ] && [ -s "$TMP/q_chat" ] && ok "the .spqr chats (its template came along)" || bad "chat on the .spqr: rc $rc $(cat "$TMP/err")"
if grep -aq '"spqr_tokenizer_config"' "$TMP/new.spqr" && grep -aq '"add_bos_token":[[:space:]]*false' "$TMP/new.spqr"; then
    ok "the .spqr config text keeps the template and add_bos_token"
else bad "no spqr_tokenizer_config / add_bos_token in the .spqr"; fi

# --- a pseudo-terminal: Ctrl-C stops the reply, not the program; Ctrl-D quits
/usr/bin/python3 - "$SPQR" "$M" <<'PY'
import os, pty, select, sys, time
spqr, model = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(spqr, [spqr, "chat", model, "-n", "100000", "--temp", "1", "--seed", "7", "-t", "1"])
buf = b""
def read_until(pred, timeout):
    global buf
    end = time.time() + timeout
    while time.time() < end:
        if pred(buf): return True
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try: chunk = os.read(fd, 4096)
            except OSError: return pred(buf)
            if not chunk: return pred(buf)
            buf += chunk
    return pred(buf)
fails = 0
def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + what)
    fails += not cond
check(read_until(lambda b: b.count(b"> ") >= 1, 60), "chat prompts for input")
for turn in range(2):
    mark = len(buf)
    os.write(fd, b"Tell me everything\r")
    check(read_until(lambda b: len(b) > mark + 60, 60), f"turn {turn + 1}: the reply streams")
    os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT
    check(read_until(lambda b: b"[reply stopped]" in b[mark:] and b[mark:].rstrip().endswith(b">"), 30),
          f"turn {turn + 1}: Ctrl-C stops the reply and prompts again")
    check(os.waitpid(pid, os.WNOHANG) == (0, 0), f"turn {turn + 1}: the program is still running")
os.write(fd, b"\x04")  # Ctrl-D at the prompt
end = time.time() + 30
status = None
while time.time() < end:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = st
        break
    try:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r: os.read(fd, 4096)
    except OSError:
        pass
check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "Ctrl-D quits with status 0")
if status is None: os.kill(pid, 9)
sys.exit(1 if fails else 0)
PY
[ $? -eq 0 ] || fails=$((fails + 1))

[ "$fails" -eq 0 ] && echo "all chat CLI checks passed"
exit $((fails > 0))
