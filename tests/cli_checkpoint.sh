#!/bin/bash
# The HF loader takes a checkpoint only when config.json, the weight_map and
# the shards agree: a tensor in two shards, a weight_map that disagrees with
# the shards, or a tensor the model does not use (fewer num_hidden_layers
# than the checkpoint holds) is an error naming the tensor; a huge
# index.json is refused or loaded fast, never quadratically.
# Usage: bash cli_checkpoint.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
GEN=$(dirname "$SPQR")/gen_hostile
TMP=$(mktemp -d /tmp/spqr_cli_ckpt.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh"
S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors

fresh() { # name fixture: a private copy of a fixture directory
    rm -rf "${TMP:?}/$1"
    cp -r "$ROOT/tests/fixtures/$2" "$TMP/$1"
}
load() { # description dir: loads the model (one greedy token)
    expect_rc "$1" "$2" timeout 60 "$SPQR" generate "$3" -p "a" -n 1 --temp 0 -t 1
}
error_is() { # description fixed-string: stderr is one "spqr: generate:" line containing it
    if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^spqr: generate: ' "$TMP/err" && grep -qF -- "$2" "$TMP/err"
    then ok "$1: names it"; else bad "$1: want one line with '$2', got: $(head -c 400 "$TMP/err")"; fi
}
py() { python3 -c "$1" "${@:2}"; }
# st_add DST NAME SRC [SRCNAME]: appends tensor SRCNAME (default NAME) of
# safetensors file SRC to DST under NAME (stdlib only).
ST_ADD='
import json, struct, sys
def read(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
dst, name, src = sys.argv[1:4]
srcname = sys.argv[4] if len(sys.argv) > 4 else name
h, data = read(dst)
sh, sdata = read(src)
e = dict(sh[srcname])
b0, b1 = e["data_offsets"]
e["data_offsets"] = [len(data), len(data) + b1 - b0]
h[name] = e
data += sdata[b0:b1]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
'
# json_edit FILE PYTHON: runs PYTHON with j = the parsed FILE, then writes j back.
json_edit() {
    py "import json, sys
p = sys.argv[1]
j = json.load(open(p))
$2
json.dump(j, open(p, 'w'), indent=1)" "$1"
}

# 0. the fixtures as they are load (sharded and single-file)
fresh ok_tied tiny_tied; load 0 "sharded checkpoint loads" "$TMP/ok_tied"
fresh ok_gqa tiny_gqa; load 0 "single-file checkpoint loads" "$TMP/ok_gqa"

# 1. num_hidden_layers one lower than the checkpoint: layer 2 would be dropped
fresh fewer tiny_tied
json_edit "$TMP/fewer/config.json" 'j["num_hidden_layers"] = 2'
load 1 "num_hidden_layers 2 on a 3-layer sharded checkpoint" "$TMP/fewer"
error_is "fewer layers (sharded)" "tensor model.layers.2."
error_is "fewer layers (sharded), the reason" "is not used by a 2-layer model (num_hidden_layers in config.json)"
fresh fewer1 tiny_gqa
n=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$TMP/fewer1/config.json")
json_edit "$TMP/fewer1/config.json" "j['num_hidden_layers'] = $((n - 1))"
load 1 "num_hidden_layers one lower, single file" "$TMP/fewer1"
error_is "fewer layers (single file)" \
    "tensor model.layers.$((n - 1)).input_layernorm.weight is not used by a $((n - 1))-layer model"

# 2. two weight_map entries swapped (tensors of different shards)
fresh swap tiny_tied
json_edit "$TMP/swap/model.safetensors.index.json" '
w = j["weight_map"]
a, b = "model.layers.0.mlp.up_proj.weight", "model.layers.2.mlp.up_proj.weight"
assert w[a] != w[b]
w[a], w[b] = w[b], w[a]'
load 1 "weight_map with two entries swapped" "$TMP/swap"
error_is "swapped entries" "weight_map maps tensor model.layers.0.mlp.up_proj.weight to $S2, but it is in $S1"

# 3. the weight_map lists a tensor no shard holds / misses one a shard holds
fresh extra tiny_tied
json_edit "$TMP/extra/model.safetensors.index.json" 'j["weight_map"]["model.layers.1.mlp.extra.weight"] = "'$S1'"'
load 1 "weight_map entry without its tensor" "$TMP/extra"
error_is "entry without tensor" "weight_map maps tensor model.layers.1.mlp.extra.weight to $S1, which does not hold it"
fresh missing tiny_tied
json_edit "$TMP/missing/model.safetensors.index.json" 'del j["weight_map"]["model.norm.weight"]'
load 1 "shard tensor absent from the weight_map" "$TMP/missing"
error_is "tensor without entry" "tensor model.norm.weight of shard $S2 is missing from the weight_map"

# 4. one tensor in both shards (first shard used to win silently)
fresh dup tiny_tied
py "$ST_ADD" "$TMP/dup/$S2" model.layers.0.input_layernorm.weight "$TMP/dup/$S1"
load 1 "tensor in two shards" "$TMP/dup"
error_is "tensor in two shards" "tensor model.layers.0.input_layernorm.weight is in two shards, $S1 and $S2"

# 5. a tensor no Llama weight is named like is refused; rotary inv_freq
#    buffers (recomputed by the model) are not
fresh unknown tiny_gqa
py "$ST_ADD" "$TMP/unknown/model.safetensors" model.layers.0.self_attn.q_proj.bias "$TMP/unknown/model.safetensors" \
    model.norm.weight
load 1 "unknown tensor in the checkpoint" "$TMP/unknown"
error_is "unknown tensor" "tensor model.layers.0.self_attn.q_proj.bias is not used by the model"
fresh invfreq tiny_gqa
py "$ST_ADD" "$TMP/invfreq/model.safetensors" model.layers.0.self_attn.rotary_emb.inv_freq \
    "$TMP/invfreq/model.safetensors" model.norm.weight
load 0 "rotary inv_freq buffer is ignored" "$TMP/invfreq"

# 6. scale: a weight_map over the entry limit is refused (the old code
#    scanned the shard names seen so far for every entry, ~15 s of CPU, then
#    failed on a missing shard). One just under the limit over 4096 shards
#    must cost about what the same entries over 1 shard cost (both fail on
#    their first, missing shard): the old scan took 7 s of CPU vs 0.4 s.
big() { # entries shards: writes the index.json of $TMP/bigidx and runs generate on it
    "$GEN" index "$TMP/bigidx/model.safetensors.index.json" --entries "$1" --shards "$2" || bad "gen_hostile index"
    run_cpu timeout 120 "$SPQR" generate "$TMP/bigidx" -p a -n 1 --temp 0 -t 1
    [ "$rc" -eq 1 ] && ok "$1-entry weight_map over $2 shards (exit 1)" || bad "$1-entry weight_map: exit $rc, want 1"
}
fresh bigidx tiny_tied
big 2400000 4096
error_is "2.4M-entry weight_map" "weight_map has more than 1048576 entries"
expect_cpu 5 "2.4M-entry weight_map"
big 1000000 1
error_is "1M-entry weight_map over 1 shard" "0.safetensors: cannot open"
base=$cpu
big 1000000 4096
error_is "1M-entry weight_map over 4096 shards" "0.safetensors: cannot open"
expect_cpu "$(awk -v b="$base" 'BEGIN { print 2 * b + 1 }')" "1M entries over 4096 shards vs 1 shard (${base}s)"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
