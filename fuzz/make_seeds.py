#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (small files, checked in).

Usage: python3 fuzz/make_seeds.py [SPQR_SEEDS_DIR]
SPQR_SEEDS_DIR: the tiny .spqr files `SPQR_WRITE_SEEDS=DIR build/test_spqr_file
tests/fixtures` writes (used for spqr_file and kernel_build; without it only
tests/fixtures/spqr_fuzz_regressions is used). Standard library only;
deterministic. See docs/fuzzing.md."""
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


class Rng:
    def __init__(self, seed):
        self.s = seed

    def uniform(self):  # [-1, 1)
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (self.s >> 40) / float(1 << 24) * 2.0 - 1.0


def f16(x):
    return struct.pack("<e", x)


def bf16(x):
    return struct.pack("<f", x)[2:]


def f32(x):
    return struct.pack("<f", x)


PACK = {"F16": f16, "BF16": bf16, "F32": f32}


def safetensors(tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad_to:
        h += b" " * (-len(h) % pad_to)
    return struct.pack("<Q", len(h)) + h + blob


def floats(dtype, n, rng, scale=0.5):
    return b"".join(PACK[dtype](rng.uniform() * scale) for _ in range(n))


# ---------------------------------------------------------------- safetensors
def seeds_safetensors():
    rng = Rng(1)
    out("safetensors", "f32_f16_bf16_meta.st", safetensors(
        [("a", "F32", [2, 3], floats("F32", 6, rng)), ("b.weight", "F16", [4], floats("F16", 4, rng)),
         ("c", "BF16", [1, 2, 2], floats("BF16", 4, rng))], {"format": "pt", "note": "seed"}))
    out("safetensors", "ints_bool_empty.st", safetensors(
        [("u8", "U8", [3], b"\x01\x02\x03"), ("i8", "I8", [2], b"\xff\x7f"), ("i16", "I16", [1], b"\x01\x80"),
         ("u16", "U16", [1], b"\xff\xff"), ("i32", "I32", [2], struct.pack("<ii", -1, 7)),
         ("i64", "I64", [1], struct.pack("<q", 1 << 40)), ("f64", "F64", [1], struct.pack("<d", 2.5)),
         ("flag", "BOOL", [2], b"\x00\x01"), ("empty", "F32", [0, 4], b""), ("scalar", "F32", [], f32(1.5))]))
    out("safetensors", "unpadded_odd_offsets.st", safetensors(
        [("x", "F16", [3], floats("F16", 3, rng)), ("y", "F32", [2], floats("F32", 2, rng))], pad_to=0))
    out("safetensors", "empty_header.st", struct.pack("<Q", 2) + b"{}")
    out("safetensors", "metadata_only.st", safetensors([], {"k": "v"}))
    # the smallest fixture layer file, cut to its first tensors
    rng = Rng(2)
    out("safetensors", "layer_like.st", safetensors(
        [("W", "F32", [4, 8], floats("F32", 32, rng)), ("H", "F32", [8, 8], floats("F32", 64, rng)),
         ("mask", "U8", [4, 8], bytes(32)), ("perm", "I32", [8], struct.pack("<8i", *range(8)))],
        {"wbits": "3", "groupsize": "16", "outlier_threshold": "inf"}))


# ---------------------------------------------------------------- config
def seeds_config():
    for rel, name in (("tests/fixtures/tiny_gqa/config.json", "tiny_gqa.json"),
                      ("tests/fixtures/tiny_tied/config.json", "tiny_tied_llama3_rope.json"),
                      ("models/default/config.json", "default.json")):
        out("config", name, fixture(rel))
    out("config", "mistral_sliding.json", json.dumps({
        "model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "max_position_embeddings": 32768, "sliding_window": 4096, "use_sliding_window": False,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-05, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}))
    out("config", "llama31_lists.json", json.dumps({
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
        "max_position_embeddings": 131072, "rope_theta": 500000.0, "tie_word_embeddings": True,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "attention_bias": False,
        "mlp_bias": False}))
    out("config", "minimal_defaults.json",
        '{"model_type":"llama","vocab_size":8,"hidden_size":8,"intermediate_size":16,'
        '"num_hidden_layers":1,"num_attention_heads":2,"rope_scaling":{"type":"default"},"bos_token_id":null}')


# ---------------------------------------------------------------- index
def seeds_index():
    idx = json.loads(fixture("tests/fixtures/tiny_tied/model.safetensors.index.json"))
    out("index", "tiny_tied.json", json.dumps(idx, indent=2))
    wm = idx["weight_map"]
    compact = {"weight_map": {k: ("model-00001-of-00002.safetensors" if i % 2 == 0 else v)
                              for i, (k, v) in enumerate(sorted(wm.items()))}}
    out("index", "mixed_order.json", json.dumps(compact, separators=(",", ":")))
    out("index", "one_entry.json", '{"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors"}}')
    out("index", "bad_name.json", '{"metadata":{},"weight_map":{"a":"../config.json","b":"config.json"}}')


# ---------------------------------------------------------------- tokenizers
def seeds_tokenizer_load():
    for rel in ("tests/fixtures/tok_bytelevel.json", "tests/fixtures/tok_llama3style.json",
                "tests/fixtures/tok_sp.json", "tests/fixtures/tok_sp_meta.json"):
        out("tokenizer_load", os.path.basename(rel), fixture(rel))
    # small hand-made ones: every byte of the GPT-2 table plus a few merges
    # as [a, b] pairs, a Metaspace "always" SentencePiece, a rejected model
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    for m in ("he", "ll", "hell", "Ġt", "Ġth"):
        vocab[m] = len(vocab)
    merges = [["h", "e"], ["l", "l"], ["he", "ll"], ["Ġ", "t"], ["Ġt", "h"]]
    tok = {"version": "1.0", "added_tokens": [{"id": len(vocab), "content": "<|eot|>", "special": True}],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|eot|>"}}]},
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": True}}
    out("tokenizer_load", "bytelevel_pairs.json", json.dumps(tok, ensure_ascii=False))
    sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sp_vocab["<0x%02X>" % b] = len(sp_vocab)
    for p in ("▁", "a", "b", "▁a", "ab", "▁ab"):
        sp_vocab[p] = len(sp_vocab)
    sp = {"added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                           {"id": 2, "content": "</s>", "special": True}],
          "normalizer": None,
          "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": False},
          "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"},
          "model": {"type": "BPE", "vocab": sp_vocab, "merges": ["▁ a", "a b", "▁a b"], "byte_fallback": True,
                    "unk_token": "<unk>", "fuse_unk": True}}
    out("tokenizer_load", "sp_metaspace_always.json", json.dumps(sp, ensure_ascii=False))
    out("tokenizer_load", "wordpiece_rejected.json", '{"model":{"type":"WordPiece","vocab":{"a":0}}}')


def seeds_tokenizer():
    # byte 0 selects the tokenizer (fuzz_tokenizer.c k_files), byte 1 bit 0 = add BOS
    text = fixture("tests/fixtures/model_text.txt")[:400]
    samples = [text, b"Hello world! It's 2024 -- isn't it?\n\n\tTabs  and   spaces  ",
               "caf\u00e9 na\u00efve \u4e2d\u6587 \U0001F600 \u2581x 123456789".encode(),
               b"\xff\xfe\xc3 \xed\xa0\x80 invalid \x80\x00nul", b"<|endoftext|>a<s></s><|begin_of_text|><unk>",
               b" leading space", b"'s 're 'VE don't I'LL"]
    for sel in range(6):
        for i, s in enumerate(samples):
            if (sel + i) % 2 == 0 or i < 2:
                out("tokenizer", "t%d_%d" % (sel, i), bytes([sel, i & 1]) + s)


# ---------------------------------------------------------------- KL files
def kl_file(protocol, ctx, vocab, n_windows, tokens, rng, ppl=1.5):
    first = ctx // 2 if protocol == 1 else 0
    n_pos = n_windows * (ctx - 1 - first)
    h = b"SPQRKLB1" + struct.pack("<6IQdd", 1, protocol, ctx, vocab, n_windows, first, n_pos, ppl, 0.01)
    body = struct.pack("<%di" % len(tokens), *tokens)
    for _ in range(n_pos):
        body += b"".join(f32(-abs(rng.uniform()) * 5) for _ in range(vocab))
    return h + body


def seeds_kl_file():
    rng = Rng(3)
    out("kl_file", "fixed_run.kl", kl_file(0, 4, 5, 2, [1, 2, 3, 4, 0, 1, 2, 3], rng))
    out("kl_file", "llamacpp.kl", kl_file(1, 6, 3, 2, [7, 1, 2, 3, 4, 5, 7, 6, 5, 4, 3, 2], rng))
    out("kl_file", "one_window.kl", kl_file(0, 2, 1, 1, [0, 0], rng))
    out("kl_file", "header_only.kl", kl_file(0, 4, 5, 2, [1, 2, 3, 4, 0, 1, 2, 3], rng)[:56])


# ---------------------------------------------------------------- HF checkpoints
def hf_model(dtype, n_layers=1, hidden=8, heads=2, kv_heads=1, inter=16, tied=True, vocab=300, seed=4, extra=None):
    rng = Rng(seed)
    hd = (extra or {}).get("head_dim", hidden // heads)
    cfg = {"model_type": "llama", "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
           "num_hidden_layers": n_layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
           "max_position_embeddings": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": tied, "bos_token_id": 0, "eos_token_id": 0}
    cfg.update(extra or {})
    t = [("model.embed_tokens.weight", dtype, [vocab, hidden], floats(dtype, vocab * hidden, rng))]
    if not tied:
        t.append(("lm_head.weight", dtype, [vocab, hidden], floats(dtype, vocab * hidden, rng)))
    t.append(("model.norm.weight", dtype, [hidden], floats(dtype, hidden, rng, 1.0)))
    for l in range(n_layers):
        p = "model.layers.%d." % l
        for name, shape in (("self_attn.q_proj", [heads * hd, hidden]), ("self_attn.k_proj", [kv_heads * hd, hidden]),
                            ("self_attn.v_proj", [kv_heads * hd, hidden]), ("self_attn.o_proj", [hidden, heads * hd]),
                            ("mlp.gate_proj", [inter, hidden]), ("mlp.up_proj", [inter, hidden]),
                            ("mlp.down_proj", [hidden, inter])):
            t.append((p + name + ".weight", dtype, shape, floats(dtype, shape[0] * shape[1], rng)))
        t.append((p + "input_layernorm.weight", dtype, [hidden], floats(dtype, hidden, rng, 1.0)))
        t.append((p + "post_attention_layernorm.weight", dtype, [hidden], floats(dtype, hidden, rng, 1.0)))
    return json.dumps(cfg).encode() + b"#SPQRST#" + safetensors(t, {"format": "pt"})


def seeds_hf_model():
    out("hf_model", "f16_tied_1layer", hf_model("F16"))
    out("hf_model", "bf16_untied_2layers", hf_model("BF16", n_layers=2, tied=False, seed=5))
    out("hf_model", "f32_mha_llama3rope", hf_model("F32", hidden=4, heads=2, kv_heads=2, inter=4, seed=6, extra={
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 4}}))
    out("hf_model", "f16_headdim_vocab301", hf_model("F16", hidden=8, heads=2, kv_heads=1, inter=8, vocab=301,
                                                      seed=7, extra={"head_dim": 6, "max_position_embeddings": 2}))


def seeds_spqr(spqr_seeds):
    files = {}
    reg = os.path.join(FIX, "spqr_fuzz_regressions")
    for n in sorted(os.listdir(reg)):
        if n.endswith(".spqr"):
            files[n] = os.path.join(reg, n)
    if spqr_seeds:
        for n in sorted(os.listdir(spqr_seeds)):
            if n.endswith(".spqr"):
                files["written_" + n] = os.path.join(spqr_seeds, n)
    for target in ("spqr_file", "kernel_build"):
        for n, p in files.items():
            if os.path.getsize(p) <= 16384:
                shutil.copy(p, os.path.join(CORPUS, target, n) if os.path.isdir(os.path.join(CORPUS, target))
                            else (os.makedirs(os.path.join(CORPUS, target)) or os.path.join(CORPUS, target, n)))


def seeds_chat_template():
    """The real and feature templates of tests/fixtures/chat (tools/make_chat_fixtures.js)."""
    d = os.path.join(FIX, "chat")
    for n in sorted(os.listdir(d)):
        if not n.endswith(".json") or n == "tokenized.json":
            continue
        doc = json.load(open(os.path.join(d, n), encoding="utf-8"))
        for t in doc.get("templates", [doc]):
            out("chat_template", t["name"] + ".jinja", t["template"])


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    seeds_safetensors()
    seeds_config()
    seeds_index()
    seeds_tokenizer_load()
    seeds_tokenizer()
    seeds_kl_file()
    seeds_hf_model()
    seeds_chat_template()
    seeds_spqr(sys.argv[1] if len(sys.argv) > 1 else None)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print("fuzz/corpus: %d bytes" % total)


if __name__ == "__main__":
    main()
