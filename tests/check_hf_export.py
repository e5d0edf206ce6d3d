#!/usr/bin/python3
"""Independent check of a `spqr export --to hf-fp16|hf-bf16` directory.

Reads the safetensors files with its own parser (the format's spec: an
8-byte little-endian header length, a JSON header, contiguous data) and
checks what any Hugging Face tool relies on: config.json without
quantization settings and with the export's torch_dtype, a consistent
shard index, every tensor of the original checkpoint present with its
shape and dtype, unquantized tensors (norms, embedding, head) equal to the
original rounded to the 16-bit type, quantized linears close to the
original and not equal to it.
Usage: check_hf_export.py EXPORT_DIR ORIGINAL_HF_DIR F16|BF16"""
import json
import os
import struct
import sys

import torch

TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    meta = header.pop("__metadata__", {})
    out, end = {}, 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = t["data_offsets"]
        assert b == end, f"{path}: {name} is not contiguous"
        end = e
        arr = torch.frombuffer(bytearray(data[b:e]), dtype=TORCH[t["dtype"]]).reshape(t["shape"]) if e > b else torch.zeros(t["shape"], dtype=TORCH[t["dtype"]])
        out[name] = (t["dtype"], arr)
    assert end == len(data), f"{path}: trailing bytes"
    return meta, out


def to_f32(dtype, arr):
    return arr.to(torch.float32)


def round_to(dtype, x):
    return x.to(TORCH[dtype]).to(torch.float32)  # round to nearest even, as the format's users expect


def load_dir(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors, metas = {}, []
    if os.path.exists(idx):
        assert not os.path.exists(os.path.join(d, "model.safetensors")), "both an index and model.safetensors"
        index = json.load(open(idx))
        wm = index["weight_map"]
        total = 0
        for shard in sorted(set(wm.values())):
            meta, ts = read_safetensors(os.path.join(d, shard))
            metas.append(meta)
            for name, (dt, arr) in ts.items():
                assert wm.get(name) == shard, f"{name} is in {shard} but the index says {wm.get(name)}"
                total += arr.numel() * arr.element_size()
            tensors.update(ts)
        assert set(wm) == set(tensors), "index and shards list different tensors"
        assert index["metadata"]["total_size"] == total, "total_size is not the sum of the tensors"
    else:
        meta, tensors = read_safetensors(os.path.join(d, "model.safetensors"))
        metas.append(meta)
    for m in metas:
        assert m.get("format") == "pt", "metadata format is not pt (transformers requires it)"
    return tensors


def main():
    out_dir, orig_dir, dtype = sys.argv[1:4]
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    assert "quantization_config" not in cfg and "spqr_tokenizer_config" not in cfg, "config.json keeps spqr keys"
    assert cfg["torch_dtype"] == {"F16": "float16", "BF16": "bfloat16"}[dtype], cfg["torch_dtype"]
    orig_cfg = json.load(open(os.path.join(orig_dir, "config.json")))
    for k in ("hidden_size", "num_hidden_layers", "vocab_size", "model_type"):
        assert cfg[k] == orig_cfg[k], k
    assert open(os.path.join(out_dir, "tokenizer.json"), "rb").read() == open(os.path.join(orig_dir, "tokenizer.json"), "rb").read()
    got = load_dir(out_dir)
    ref = load_dir_plain(orig_dir)
    assert set(got) == set(ref), f"tensor names differ: {sorted(set(got) ^ set(ref))}"
    n_exact = n_quant = 0
    worst = 0.0
    for name, (rdt, rarr) in ref.items():
        gdt, garr = got[name]
        assert gdt == dtype, f"{name}: dtype {gdt}"
        assert tuple(garr.shape) == tuple(rarr.shape), f"{name}: shape {garr.shape} vs {rarr.shape}"
        g, r = to_f32(gdt, garr), to_f32(rdt, rarr)
        assert bool(torch.isfinite(g).all()), name
        if torch.equal(g, round_to(dtype, r)):
            n_exact += 1
            continue
        # a quantized linear (the head and the token embedding are quantized
        # by default too): the SpQR weights, close to the original
        rel = float(torch.linalg.norm(g - r) / torch.linalg.norm(r))
        quantizable = "proj" in name or name in ("lm_head.weight", "model.embed_tokens.weight")
        assert quantizable and rel < 0.35, f"{name}: relative error {rel:.3f} to the original"
        worst = max(worst, rel)
        n_quant += 1
    assert n_quant > 0, "no tensor differs from the original: nothing was quantized?"
    print(f"{len(got)} tensors: {n_exact} equal to the original in {dtype}, {n_quant} quantized (worst relative error {worst:.3f})")


def load_dir_plain(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(idx):
        return read_safetensors(os.path.join(d, "model.safetensors"))[1]
    out = {}
    for shard in sorted(set(json.load(open(idx))["weight_map"].values())):
        out.update(read_safetensors(os.path.join(d, shard))[1])
    return out


if __name__ == "__main__":
    main()
