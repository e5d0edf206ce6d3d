"""Generate golden per-layer SpQR fixtures for the C engine tests.

Usage (from the repository root; needs Debian's python with torch):
    /usr/bin/python3 tools/make_layer_fixtures.py [outdir]   # default tests/fixtures

Writes tests/fixtures/layer_<name>.safetensors (W, H, W_hat, mask, perm +
string metadata with every parameter) and layer_cli.safetensors (weight,
hessian, expected_weight, expected_mask), after running self-checks on the
reference (tools/spqr_reference.py). Fixed seeds: the output is reproducible.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spqr_reference as ref  # noqa: E402
from spqr_reference import Params  # noqa: E402

F64, F32 = torch.float64, torch.float32


# ---------------------------------------------------------------------------
# safetensors writer (format: u64 LE header length, JSON header, raw LE data)
# ---------------------------------------------------------------------------

_DTYPES = {torch.float32: ("F32", "<f4"), torch.uint8: ("U8", "u1"), torch.int32: ("I32", "<i4")}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor); metadata: dict str -> str."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs, off = [], 0
    for name, t in tensors:
        st_dtype, np_dtype = _DTYPES[t.dtype]
        raw = np.ascontiguousarray(t.numpy()).astype(np_dtype, copy=False).tobytes()
        header[name] = {"dtype": st_dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # align data start to 8 bytes
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """Minimal reader used to verify our own files round-trip."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    inv = {v[0]: (k, v[1]) for k, v in _DTYPES.items()}
    out = {}
    for name, h in header.items():
        tdt, npdt = inv[h["dtype"]]
        a, b = h["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=npdt).reshape(h["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------

def make_hessian(cols, seed, n=None, dead_cols=()):
    """H = X^T X / n with X = Z A (correlated inputs, spread column scales)."""
    g = torch.Generator().manual_seed(seed)
    n = n or 4 * cols
    Z = torch.randn(n, cols, generator=g, dtype=F64)
    A = torch.randn(cols, cols, generator=g, dtype=F64) / math.sqrt(cols)
    A += torch.eye(cols, dtype=F64)
    colscale = torch.exp(0.7 * torch.randn(cols, generator=g, dtype=F64))
    X = (Z @ A) * colscale
    for c in dead_cols:
        X[:, c] = 0.0
    H = X.T @ X / n
    H = (H + H.T) / 2  # exactly symmetric so any Cholesky triangle sees the same matrix
    return H.to(F32)


def make_weight(rows, cols, seed, planted=0):
    g = torch.Generator().manual_seed(seed + 1000)
    rowscale = torch.exp(0.3 * torch.randn(rows, 1, generator=g, dtype=F64))
    W = 0.05 * rowscale * torch.randn(rows, cols, generator=g, dtype=F64)
    if planted:
        idx = torch.randperm(rows * cols, generator=g)[:planted]
        sign = torch.where(torch.rand(planted, generator=g) < 0.5, -1.0, 1.0).to(F64)
        W.view(-1)[idx] = sign * (0.4 + 0.4 * torch.rand(planted, generator=g, dtype=F64))
    return W.to(F32)


def make_tie_weight(rows=16, cols=32, seed=9):
    """Every group holds -0.75 and 3.0 (times a power of two per row), so w4
    statistics are exact: s = 0.25 * 2^k, z = 3, and the other weights are
    multiples of s/2, half of them exact ties of rint."""
    g = torch.Generator().manual_seed(seed)
    W = torch.empty(rows, cols, dtype=F64)
    for r in range(rows):
        scale = 2.0 ** (r % 3 - 1)
        for g0 in range(0, cols, 16):
            v = torch.randint(-6, 25, (16,), generator=g).to(F64) * 0.125
            v[torch.randperm(16, generator=g)[:2]] = torch.tensor([-0.75, 3.0], dtype=F64)
            W[r, g0:g0 + 16] = v * scale
    return W.to(F32)


# ---------------------------------------------------------------------------
# Independent checks
# ---------------------------------------------------------------------------

def rtn_direct(W32, p):
    """Round-to-nearest written independently (numpy, grouped reshape).

    Valid for identity perm, no dead columns, 16-bit statistics, asym,
    no round_zero, no outliers, cols % groupsize == 0."""
    W = W32.numpy().astype(np.float64)
    rows, cols = W.shape
    g = p.groupsize or cols
    maxq = 2 ** p.wbits - 1
    G = W.reshape(rows, cols // g, g)
    lo, hi = G.min(axis=2, keepdims=True), G.max(axis=2, keepdims=True)
    same = lo == hi
    lo = np.where(same, -1.0, lo)
    hi = np.where(same, 1.0, hi)
    s = (hi - lo) / maxq
    z = -lo / s
    s16 = s.astype(np.float32).astype(np.float16).astype(np.float32)
    z16 = z.astype(np.float32).astype(np.float16).astype(np.float32)
    q = np.clip(np.rint(G / np.maximum(s16.astype(np.float64), 1e-9) + z16.astype(np.float64)), 0, maxq)
    what = s16 * (q.astype(np.float32) - z16)
    return torch.from_numpy(what.reshape(rows, cols).astype(np.float32))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

SPQR = Params()  # w3 b1=16 qq3/3 b2=16 tau=0.2 LOO act_order percdamp 1.0
GPTQ16 = Params(wbits=4, groupsize=32, qq_scale_bits=0, qq_zero_bits=0, outlier_threshold=math.inf,
                percdamp=0.01, perm="identity")


def cases():
    """name -> (W, H, params, description)."""
    c = {}
    H = make_hessian(128, seed=1)
    W = make_weight(64, 128, seed=1)
    c["spqr_w3"] = (W, H, SPQR, "SpQR w3 b1=b2=16 qq3/3 tau=0.2 LOO act_order percdamp 1.0")
    Hd = make_hessian(128, seed=2, dead_cols=(3, 17, 18, 64, 127))
    Wd = make_weight(64, 128, seed=2, planted=24)
    c["spqr_dead"] = (Wd, Hd, SPQR, "as spqr_w3 + 5 dead input columns + 24 planted large weights")
    c["spqr_simplified"] = (Wd, Hd, SPQR.copy(simplified_outliers=1),
                            "simplified outliers (no leave-one-out) on the spqr_dead data")
    c["gptq_w4_g32"] = (W, H, GPTQ16, "GPTQ w4 g32, 16-bit stats, no outliers, percdamp 0.01, identity")
    c["gptq_w4_row"] = (W, H, GPTQ16.copy(groupsize=0, wbits=3),
                        "GPTQ w3 per-row (groupsize 0), 16-bit stats, percdamp 0.01, identity")
    c["rtn_w4"] = (W, H, GPTQ16.copy(groupsize=16, gptq=0), "RTN w4 g16, 16-bit stats (gptq=0)")
    Ho = make_hessian(45, seed=3)
    Wo = make_weight(37, 45, seed=3, planted=4)
    c["odd_w2"] = (Wo, Ho, SPQR.copy(wbits=2),
                   "odd shape 37x45 (partial groups and qq chunks), w2, SpQR LOO act_order")
    c["round_zero_qq_ge"] = (W, H, SPQR.copy(round_zero=1, qq_zero_bits=3, wbits=3),
                             "round_zero with qq_zero_bits >= wbits: zeros stay fp16 (reference rule)")
    c["round_zero_qq_lt"] = (W, H, SPQR.copy(round_zero=1, qq_zero_bits=3, wbits=4),
                             "round_zero with qq_zero_bits < wbits: rounded zeros second-level quantized")
    c["sym_w3"] = (Wd, Hd, SPQR.copy(sym=1, perm="identity"),
                   "symmetric w3 (zero = 4 exactly, never second-level quantized although qq_zero_bits=3), "
                   "identity perm so dead columns sit mid-matrix")
    c["spqr_block24"] = (W, H, SPQR.copy(blocksize=24),
                         "as spqr_w3 with blocksize 24: groups of 16 straddle block ends (pending updates "
                         "must reach the group's columns beyond the block before the fit)")
    c["mixed_qq24"] = (Wd, Hd, SPQR.copy(wbits=4, groupsize=32, qq_scale_bits=4, qq_zero_bits=0,
                                         qq_groupsize=24, perm="identity", outlier_threshold=0.5),
                       "w4 g32, bilevel 4-bit scales but fp16 zeros, qq_groupsize 24 (chunks 24,24,16), "
                       "tau 0.5, identity, dead columns")
    c["rtn_ties"] = (make_tie_weight(), make_hessian(32, seed=5), GPTQ16.copy(groupsize=16, gptq=0),
                     "RTN w4 g16 16-bit stats on a grid weight with exact rint ties (x = k + 0.5): "
                     "round-half-to-even (rintf) and roundf give different W_hat")
    c["w8_block5"] = (W, H, SPQR.copy(wbits=8, blocksize=5),
                      "w8, blocksize 5 (< 8 groups; groups straddle blocks), SpQR LOO act_order")
    return c


def summary(name, p, W, Wh, M, rel, info):
    rows, cols = W.shape
    bits = ref.formula_bits(p, rows, cols, info["n_outliers"])
    print(f"{name:18s} {rows}x{cols} outliers={info['n_outliers']:4d} "
          f"({100.0 * info['n_outliers'] / (rows * cols):.2f}%) rel_err={rel:.6e} "
          f"tau={info['tau']:.4g} dead={info['dead']} bits={bits:.4f} "
          "margins " + " ".join(f"{k} {v:.1e}" if k != "exact_zero_ties" else f"{k} {v}"
                                for k, v in info["margins"].items()))


def self_checks(cs):
    W, H, p, _ = cs["spqr_w3"]
    Wh, M, rel, _ = ref.quantize_layer(W, H, p)
    # 1. blocksize is a speed device only
    for name in ("spqr_w3", "spqr_dead", "odd_w2", "gptq_w4_g32", "sym_w3", "round_zero_qq_lt"):
        Wc, Hc, pc, _ = cs[name]
        a = ref.quantize_layer(Wc, Hc, pc.copy(blocksize=1))
        b = ref.quantize_layer(Wc, Hc, pc.copy(blocksize=128))
        c = ref.quantize_layer(Wc, Hc, pc.copy(blocksize=7))
        for o in (b, c):
            check(torch.equal(a[1], o[1]), f"{name}: outlier mask depends on blocksize")
            check(torch.equal(a[0], o[0]), f"{name}: W_hat depends on blocksize "
                  f"(max diff {float((a[0] - o[0]).abs().max())})")
    # 2. RTN equals direct rounding
    Wr, Hr, pr, _ = cs["rtn_w4"]
    check(torch.equal(ref.quantize_layer(Wr, Hr, pr)[0], rtn_direct(Wr, pr)), "RTN != direct rounding")
    Wt, Ht, pt, _ = cs["rtn_ties"]
    Wt_hat = ref.quantize_layer(Wt, Ht, pt)[0]
    check(torch.equal(Wt_hat, rtn_direct(Wt, pt)), "RTN ties != direct rounding")
    x = Wt.to(F64) / (0.25 * 2.0 ** (torch.arange(16, dtype=F64)[:, None] % 3 - 1)) + 3
    even_ties = int(((x - torch.floor(x) == 0.5) & (torch.floor(x) % 2 == 0)).sum())
    check(even_ties > 20, "rtn_ties has too few discriminating ties")
    half_away = (torch.clamp(torch.floor(x + 0.5), 0, 15) - 3) * (0.25 * 2.0 ** (torch.arange(16, dtype=F64)[:, None] % 3 - 1))
    check(int((half_away.to(F32) != Wt_hat).sum()) == even_ties, "ties do not discriminate rint from roundf")
    # 3. GPTQ beats RTN (same settings otherwise)
    rel_rtn = ref.quantize_layer(W, H, p.copy(gptq=0))[2]
    check(rel < rel_rtn, f"GPTQ {rel} !< RTN {rel_rtn}")
    rel_g16 = ref.quantize_layer(W, H, GPTQ16)[2]
    rel_r16 = ref.quantize_layer(W, H, GPTQ16.copy(gptq=0))[2]
    check(rel_g16 < rel_r16, f"GPTQ16 {rel_g16} !< RTN16 {rel_r16}")
    # 4. outliers reduce error (case a and the planted case)
    rel_noout = ref.quantize_layer(W, H, p.copy(outlier_threshold=math.inf))[2]
    check(rel < rel_noout, f"outliers {rel} !< none {rel_noout}")
    Wd, Hd, pd, _ = cs["spqr_dead"]
    rel_d = ref.quantize_layer(Wd, Hd, pd)[2]
    rel_d0 = ref.quantize_layer(Wd, Hd, pd.copy(outlier_threshold=math.inf))[2]
    check(rel_d < rel_d0, f"dead/planted: outliers {rel_d} !< none {rel_d0}")
    # 5. planted weights end up as outliers, dead columns are zero
    Wh_d, M_d, _, info = ref.quantize_layer(Wd, Hd, pd)
    planted = Wd.abs() > 0.39
    dead = torch.diagonal(Hd) == 0
    check(bool(M_d[planted & ~dead[None, :]].all()), "a planted weight is not an outlier")
    # dead columns are zeroed before quantization: at w8 they become quantize(0),
    # within half a step of 0, whatever the original weights there were
    Wh8 = ref.quantize_layer(Wd, Hd, pd.copy(wbits=8))[0]
    check(float(Wh8[:, dead].abs().max()) < 0.01 < float(Wd[:, dead].abs().max()), "dead columns not zeroed")
    # 6. outliers are the fp16 of the original weight only when no GPTQ update
    #    touched them: for RTN with outliers they must be exact fp16(W)
    Wr2, M2, _, _ = ref.quantize_layer(Wd, Hd, pd.copy(gptq=0))
    o = M2.bool()
    check(torch.equal(Wr2[o], Wd[o].to(torch.float16).to(F32)), "RTN outliers != fp16(W)")
    # 7. robustness: perturbing U by 1e-10 relative (another LAPACK's rounding)
    #    leaves every fixture bit-identical, so C tests can demand exact equality
    for name, (Wc, Hc, pc, _) in cs.items():
        x, y = ref.quantize_layer(Wc, Hc, pc), ref.quantize_layer(Wc, Hc, pc, u_noise=1e-10)
        check(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]), f"{name}: not robust to 1e-10 noise in U")
    print(f"self-checks ok: gptq {rel:.4e} < rtn {rel_rtn:.4e}; outliers {rel:.4e} < none {rel_noout:.4e}; "
          f"w4g32 gptq {rel_g16:.4e} < rtn {rel_r16:.4e}")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)  # deterministic reductions
    cs = cases()
    self_checks(cs)
    for name, (W, H, p, desc) in cs.items():
        Wh, M, rel, info = ref.quantize_layer(W, H, p)
        meta = p.metadata()
        meta.update(rel_error=repr(rel), n_outliers=str(info["n_outliers"]), tau=repr(info["tau"]),
                    description=desc)
        mg = dict(info["margins"])
        meta["exact_zero_ties"] = str(mg.pop("exact_zero_ties"))
        meta.update({f"min_margin_{k}": repr(v) for k, v in mg.items()})
        path = os.path.join(outdir, f"layer_{name}.safetensors")
        write_safetensors(path, [("W", W), ("H", H), ("W_hat", Wh), ("mask", M),
                                 ("perm", info["perm"].to(torch.int32))], meta)
        back, bmeta = read_safetensors(path)
        check(torch.equal(back["W_hat"], Wh) and bmeta["wbits"] == meta["wbits"], "round trip")
        summary(name, p, W, Wh, M, rel, info)
    # CLI fixture: default parameters, small matrix
    H = make_hessian(40, seed=7)
    W = make_weight(24, 40, seed=7, planted=3)
    p = Params()
    Wh, M, rel, info = ref.quantize_layer(W, H, p)
    meta = p.metadata()
    meta.update(rel_error=repr(rel), n_outliers=str(info["n_outliers"]), tau=repr(info["tau"]),
                description="input for spqr quantize-matrix with default parameters")
    write_safetensors(os.path.join(outdir, "layer_cli.safetensors"),
                      [("weight", W), ("hessian", H), ("expected_weight", Wh), ("expected_mask", M)], meta)
    summary("cli", p, W, Wh, M, rel, info)


if __name__ == "__main__":
    main()
