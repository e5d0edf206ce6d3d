#!/usr/bin/env python3
"""Writes a Llama Hugging Face directory (config.json, one model.safetensors
of F16 tensors, a byte-level BPE tokenizer.json) as an F16 GGUF for
llama.cpp, using llama.cpp's own gguf-py (put LLAMA_CPP_SRC/gguf-py on
PYTHONPATH).

Why not llama.cpp's convert_hf_to_gguf.py: it imports `transformers` at
start-up, which Debian does not package and this project cannot pip-install.
This script does only what that converter does for a plain Llama checkpoint:
the same GGUF keys and tensor names, 2-D weights kept F16, 1-D norms as F32,
and q/k rows reordered from the Hugging Face rotary layout (halves) to
GGML's (interleaved pairs) so the GGUF computes the same function. The
tokenizer.json vocabulary (and merges) go in as a "gpt2" BPE vocabulary,
padded with unused tokens up to config.json's vocab_size.

usage: hf_to_gguf_llama.py HF_DIR OUT.gguf
"""
import json
import os
import struct
import sys

import numpy as np

try:
    import gguf
except ImportError as e:
    # gguf itself missing, or one of its imports (numpy; sentencepiece in older llama.cpp)
    sys.exit(f"hf_to_gguf_llama.py: cannot import gguf ({e}): put $LLAMA_CPP_SRC/gguf-py on PYTHONPATH; "
             "its imports come from Debian (python3-numpy, python3-yaml, python3-sentencepiece)")


def read_safetensors(path):
    """Memory-maps a safetensors file: name -> numpy view (no copies)."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    dtypes = {"F16": np.float16, "F32": np.float32, "BF16": None}
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + hlen)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = dtypes.get(info["dtype"])
        if dt is None:
            sys.exit(f"hf_to_gguf_llama.py: {name}: dtype {info['dtype']} not handled (F16/F32 only)")
        a, b = info["data_offsets"]
        out[name] = raw[a:b].view(dt).reshape(info["shape"])
    return out


def rotary_to_interleaved(w, n_head):
    """HF stores each head's rotary pairs as two halves; GGML's rope wants them adjacent."""
    rows = w.shape[0]
    return np.ascontiguousarray(w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: hf_to_gguf_llama.py HF_DIR OUT.gguf")
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(src, "tokenizer.json")) as f:
        tok = json.load(f)
    if tok["model"]["type"] != "BPE":
        sys.exit("hf_to_gguf_llama.py: only byte-level BPE tokenizer.json is handled")
    t = read_safetensors(os.path.join(src, "model.safetensors"))

    n_layer = cfg["num_hidden_layers"]
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    n_vocab = cfg["vocab_size"]

    w = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    w.add_name(os.path.basename(os.path.normpath(src)))
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-5))
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    vocab = tok["model"]["vocab"]
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    tokens, types = [], []
    by_id = {i: s for s, i in vocab.items()}
    for a in added.values():
        by_id[a["id"]] = a["content"]
    for i in range(n_vocab):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in added and added[i].get("special") else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = tok["model"].get("merges", [])
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg.get("bos_token_id", 0))
    w.add_eos_token_id(cfg.get("eos_token_id", 0))

    def f16(a):
        return a if a.dtype == np.float16 else a.astype(np.float16)

    def f32(a):
        return np.ascontiguousarray(a, dtype=np.float32)

    w.add_tensor("token_embd.weight", f16(t["model.embed_tokens.weight"]))
    for i in range(n_layer):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", f32(t[p + "input_layernorm.weight"]))
        w.add_tensor(b + "attn_q.weight", rotary_to_interleaved(f16(t[p + "self_attn.q_proj.weight"]), n_head))
        w.add_tensor(b + "attn_k.weight", rotary_to_interleaved(f16(t[p + "self_attn.k_proj.weight"]), n_kv))
        w.add_tensor(b + "attn_v.weight", f16(t[p + "self_attn.v_proj.weight"]))
        w.add_tensor(b + "attn_output.weight", f16(t[p + "self_attn.o_proj.weight"]))
        w.add_tensor(b + "ffn_norm.weight", f32(t[p + "post_attention_layernorm.weight"]))
        w.add_tensor(b + "ffn_gate.weight", f16(t[p + "mlp.gate_proj.weight"]))
        w.add_tensor(b + "ffn_up.weight", f16(t[p + "mlp.up_proj.weight"]))
        w.add_tensor(b + "ffn_down.weight", f16(t[p + "mlp.down_proj.weight"]))
    w.add_tensor("output_norm.weight", f32(t["model.norm.weight"]))
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    w.add_tensor("output.weight", f16(head))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
