#!/usr/bin/python3
"""Independent decoder of the Hugging Face SpQR layout (quant_method "spqr").

Written from the description in docs/format.md ("hf-spqr: the Hugging Face
SpQR layout"), not from spqr's C code, so a test can hold the two against
each other. numpy only; safetensors read and written by hand.

    hf_spqr_decode.py HF_SPQR_DIR OUT_DIR
        writes OUT_DIR as a plain checkpoint: every quantized linear decoded
        by the format's rule to F32 (original column order), other tensors
        as stored, config.json without quantization_config, tokenizer files.
    hf_spqr_decode.py HF_SPQR_DIR --module NAME --raw OUT.f32
        writes one decoded linear as raw little-endian float32 [rows][cols].
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64, "I32": np.int32}
NAME = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}


def read_safetensors(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    header.pop("__metadata__", None)
    data = memoryview(blob)[8 + n :]
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], np.frombuffer(data[b:e], dtype=DT[t["dtype"]]).reshape(t["shape"]))
    return out


def write_safetensors(path, tensors):
    header, off, chunks = {"__metadata__": {"format": "pt"}}, 0, []
    for name, (dtype, arr) in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        chunks.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for c in chunks:
            f.write(c)


def hround(x):
    """Round float64 values to fp16, nearest even (a single rounding)."""
    return x.astype(np.float16)


def decode(rows, cols, dense_weights, row_offsets, col_vals, in_perm):
    """The format's rule: W[rows][cols] float32 in original column order."""
    assert rows % 16 == 0 and cols % 16 == 0, "rows and columns must be multiples of 16"
    tr, tc = rows // 16, cols // 16
    w = dense_weights.view(np.uint64).reshape(tr, tc, 16)  # [row tile][column tile][row in tile]
    assert len(row_offsets) == rows + 1, "CSR row_offsets expected (rows + 1 entries)"
    # second-level word of each tile: byte b from row 2b (row 2b+1 repeats it)
    frag = (w >> np.uint64(54)) & np.uint64(0xFF)
    assert np.array_equal(frag[:, :, 0::2], frag[:, :, 1::2]), "rows 2b and 2b+1 disagree on a second-level byte"
    assert not np.any(w >> np.uint64(62)), "top two bits set"
    V = np.zeros((tr, tc), dtype=np.uint64)
    for b in range(8):
        V |= frag[:, :, 2 * b] << np.uint64(8 * b)
    half = lambda bits: (bits & np.uint64(0xFFFF)).astype(np.uint16).view(np.float16).astype(np.float64)
    ss, zs, sz, zz = half(V), half(V >> np.uint64(16)), half(V >> np.uint64(32)), half(V >> np.uint64(48))
    sq = (w & np.uint64(7)).astype(np.float64)
    zq = ((w >> np.uint64(3)) & np.uint64(7)).astype(np.float64)
    s = hround(ss[:, :, None] * hround(sq - sz[:, :, None]).astype(np.float64)).astype(np.float64)
    z = hround(zs[:, :, None] * hround(zq - zz[:, :, None]).astype(np.float64)).astype(np.float64)
    q = np.stack([((w >> np.uint64(6 + 3 * l)) & np.uint64(7)).astype(np.float64) for l in range(16)], axis=-1)
    dense = hround(s[..., None] * hround(q - z[..., None]).astype(np.float64))  # [tr][tc][16 rows][16 cols]
    Wp = dense.transpose(0, 2, 1, 3).reshape(rows, cols).astype(np.float32)
    cv = col_vals.view(np.uint32)
    cols_of = (cv & 0xFFFF).astype(np.int64)
    vals = (cv >> 16).astype(np.uint16).view(np.float16).astype(np.float32)
    assert np.all(cols_of < cols), "outlier column out of range"
    assert row_offsets[0] == 0 and row_offsets[-1] == len(cv) and np.all(np.diff(row_offsets) >= 0), "bad row_offsets"
    rows_of = np.repeat(np.arange(rows), np.diff(row_offsets))
    np.add.at(Wp, (rows_of, cols_of), vals)  # the value is added to the dense weight, in fp32
    p = in_perm.view(np.uint32)
    perm = np.empty(cols, dtype=np.int64)
    perm[0::2], perm[1::2] = p & 0xFFFF, p >> 16
    assert np.array_equal(np.sort(perm), np.arange(cols)), "in_perm is not a permutation"
    W = np.empty_like(Wp)
    W[:, perm] = Wp  # permuted column j is original column perm[j]
    return W


def modules(cfg, tensors):
    qc = cfg["quantization_config"]
    assert qc["quant_method"] == "spqr" and qc["bits"] == 3 and qc["beta1"] == 16 and qc["beta2"] == 16, qc
    return sorted({k[: -len(".dense_weights")] for k in tensors if k.endswith(".dense_weights")})


def decode_module(tensors, m):
    g = lambda part: tensors[f"{m}.{part}"][1]
    rows = len(g("row_offsets")) - 1
    cols = 2 * len(g("in_perm"))
    return decode(rows, cols, g("dense_weights"), g("row_offsets"), g("col_vals"), g("in_perm"))


def main():
    src = sys.argv[1]
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors = read_safetensors(os.path.join(src, "model.safetensors"))
    mods = modules(cfg, tensors)
    if len(sys.argv) == 6 and sys.argv[2] == "--module" and sys.argv[4] == "--raw":
        decode_module(tensors, sys.argv[3]).astype("<f4").tofile(sys.argv[5])
        return
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    res = {k: v for k, v in tensors.items() if not any(k.startswith(m + ".") for m in mods)}
    for m in mods:
        res[m + ".weight"] = ("F32", decode_module(tensors, m))
    write_safetensors(os.path.join(out, "model.safetensors"), res)
    cfg.pop("quantization_config")
    cfg["torch_dtype"] = "float32"
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(out, f))
    print(f"decoded {len(mods)} linears")


if __name__ == "__main__":
    main()
