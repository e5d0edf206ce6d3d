"""Independent PyTorch reference of per-layer SpQR quantization.

Implements /work/notes/engine-spec.md literally (a restatement of the method in
docs/ and of the public reference implementation's semantics), in float64,
with fp32/fp16 rounding exactly at the spec's "rounding points". It exists to
produce golden fixtures for the C engine (src/quant/); it is never part of the
product path. Run with Debian's /usr/bin/python3 (needs torch).

Conventions a C implementation must match (see tests/fixtures/README.md):
  * fp16 rounding of a double x is (half)(float)x: round to fp32 first (RNE),
    then to fp16 (RNE). This is what spqr_fp32_to_fp16((float)x) does.
  * Parameters that are float in spqr_quant_params (outlier_threshold,
    percdamp) are used as (double)(float)value.
  * rint = round half to even (torch.round).
"""

import math

import torch

F64 = torch.float64
F32 = torch.float32
F16 = torch.float16


class Params:
    """Mirror of spqr_quant_params. Defaults = spqr_quant_params_default."""

    def __init__(self, **kw):
        self.wbits = 3
        self.groupsize = 16
        self.qq_scale_bits = 3
        self.qq_zero_bits = 3
        self.qq_groupsize = 16
        self.outlier_threshold = 0.2
        self.simplified_outliers = 0
        self.percdamp = 1.0
        self.blocksize = 128
        self.perm = "act_order"
        self.round_zero = 0
        self.sym = 0
        self.gptq = 1
        for k, v in kw.items():
            if not hasattr(self, k):
                raise KeyError(k)
            setattr(self, k, v)

    def copy(self, **kw):
        d = dict(self.__dict__)
        d.update(kw)
        return Params(**d)

    def metadata(self):
        """String metadata as written into the fixtures."""
        thr = self.outlier_threshold
        off = not (math.isfinite(thr) and thr > 0)
        return {
            "wbits": str(self.wbits),
            "groupsize": str(self.groupsize),
            "qq_scale_bits": str(self.qq_scale_bits),
            "qq_zero_bits": str(self.qq_zero_bits),
            "qq_groupsize": str(self.qq_groupsize),
            "outlier_threshold": "inf" if off else repr(float(thr)),
            "simplified_outliers": str(int(self.simplified_outliers)),
            "percdamp": repr(float(self.percdamp)),
            "blocksize": str(self.blocksize),
            "perm": self.perm,
            "round_zero": str(int(self.round_zero)),
            "sym": str(int(self.sym)),
            "gptq": str(int(self.gptq)),
        }


def as_f32_param(x):
    """(double)(float)x: the C struct stores these knobs as float."""
    return float(torch.tensor(x, dtype=F32).item())


def to_f16(x):
    """fp16 rounding of a double tensor, as (half)(float)x; returned as double."""
    return x.to(F32).to(F16).to(F64)


# ---------------------------------------------------------------------------
# Min-max fitting (spec step 7, first half) -- plain, in double
# ---------------------------------------------------------------------------

def _note_margin(margins, key, x, maxq):
    """Record the smallest distance of x to a rint tie inside the clamp range."""
    if margins is None:
        return
    inside = (x > -0.5) & (x < maxq + 0.5)
    if inside.any():
        xi = x[inside]
        margins[key] = min(margins[key], float(((xi - torch.floor(xi)) - 0.5).abs().min()))


def minmax_fit(X, bits, sym, round_zero):
    """X [rows, n] double, n >= 1 -> (s, z) double [rows]."""
    maxq = float(2 ** bits - 1)
    xmin = X.min(dim=1).values.clone()
    xmax = X.max(dim=1).values.clone()
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        neg = xmin < 0
        xmin[neg] = -xmax[neg]
    same = xmin == xmax
    xmin[same] = -1.0
    xmax[same] = 1.0
    s = (xmax - xmin) / maxq
    if sym:
        z = torch.full_like(s, (maxq + 1.0) / 2.0)
    else:
        z = -xmin / s
        if round_zero:
            z = torch.round(z)
    return s, z


def qdq_plain(X, s, z, bits):
    """Plain quantize-dequantize in double (used only by leave-one-out)."""
    maxq = float(2 ** bits - 1)
    q = torch.clamp(torch.round(X / s.clamp_min(1e-9) + z), 0.0, maxq)
    return s * (q - z)


# ---------------------------------------------------------------------------
# Storage of the statistics (spec step 7, second half): bilevel or fp16
# ---------------------------------------------------------------------------

def second_level(v, qbits, qgs, margins=None):
    """Quantize the vector v [rows] (double) in chunks of qgs rows with qbits.

    Returns the dequantized values as fp32 [rows]."""
    rows = v.shape[0]
    maxq2 = float(2 ** qbits - 1)
    out = torch.empty(rows, dtype=F32)
    for c0 in range(0, rows, qgs):
        chunk = v[c0:c0 + qgs]
        s2, z2 = minmax_fit(chunk.unsqueeze(0), qbits, sym=False, round_zero=False)
        s2h = to_f16(s2)
        z2h = to_f16(z2)
        if not (torch.isfinite(s2h).all() and torch.isfinite(z2h).all()):
            raise FloatingPointError("second-level statistic overflows fp16")
        x = chunk / s2h.clamp_min(1e-9) + z2h
        _note_margin(margins, "stat_round", x, maxq2)
        code = torch.clamp(torch.round(x), 0.0, maxq2)
        out[c0:c0 + qgs] = s2h.to(F32) * (code.to(F32) - z2h.to(F32))
    return out


def store_stats(s, z, p, qgs_rows, margins=None):
    """First-level s, z (double [rows]) -> dequantized (sdq, zdq) fp32 [rows]."""
    if p.qq_scale_bits > 0:
        sdq = second_level(s, p.qq_scale_bits, qgs_rows, margins)
    else:
        sdq = to_f16(s).to(F32)
    zeros_bilevel = (p.qq_zero_bits > 0 and not p.sym
                     and not (p.round_zero and p.qq_zero_bits >= p.wbits))
    if zeros_bilevel:
        zdq = second_level(z, p.qq_zero_bits, qgs_rows, margins)
    else:
        zdq = to_f16(z).to(F32)
    if not (torch.isfinite(sdq).all() and torch.isfinite(zdq).all()):
        raise FloatingPointError("first-level statistic overflows fp16")
    return sdq, zdq


def fit_group_full(X, p, margins=None):
    """Spec step 7 on block X [rows, gc]: returns fp32 (sdq, zdq)."""
    s, z = minmax_fit(X, p.wbits, bool(p.sym), bool(p.round_zero) and not p.sym)
    if p.round_zero and not p.sym:
        _note_margin(margins, "stat_round", -X.min(dim=1).values / s, math.inf)
    return store_stats(s, z, p, p.qq_groupsize, margins)


# ---------------------------------------------------------------------------
# Leave-one-out outlier-aware fitting (spec step 8)
# ---------------------------------------------------------------------------

def loo_reduction(X, dg, p):
    """X [rows, gc], dg [gc] -> reduction [rows, gc] in squared weighted error."""
    rows, gc = X.shape
    sym = bool(p.sym)
    s, z = minmax_fit(X, p.wbits, sym, False)
    base = (((qdq_plain(X, s[:, None], z[:, None], p.wbits) - X) / dg) ** 2).sum(dim=1)
    loo = torch.zeros(rows, gc, dtype=F64)
    if gc > 1:
        for k in range(gc):
            keep = [c for c in range(gc) if c != k]
            Xk = X[:, keep]
            sk, zk = minmax_fit(Xk, p.wbits, sym, False)
            err = ((qdq_plain(Xk, sk[:, None], zk[:, None], p.wbits) - Xk) / dg[keep]) ** 2
            loo[:, k] = err.sum(dim=1)
    return base[:, None] - loo


def fit_group(X, dg, tau, p, margins=None):
    """Group statistics per spec steps 7/8. X is the current (updated) block."""
    if math.isfinite(tau) and not p.simplified_outliers:
        red = loo_reduction(X, dg, p)
        if margins is not None:
            margins["loo"] = min(margins["loo"], float((red / tau - 1).abs().min()))
        likely = red > tau
        keep = (~likely).to(F64)
        cnt = keep.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean = (X * keep).sum(dim=1, keepdim=True) / cnt
        X = torch.where(likely, mean.expand_as(X), X)
    return fit_group_full(X, p, margins)


# ---------------------------------------------------------------------------
# The layer (spec steps 1-6, 9, 10)
# ---------------------------------------------------------------------------

def permutation(H, mode):
    n = H.shape[0]
    if mode == "identity":
        return torch.arange(n)
    if mode == "act_order":
        d = torch.diagonal(H).to(F64)
        # stable descending: sort key (-d, index)
        order = sorted(range(n), key=lambda i: (-float(d[i]), i))
        return torch.tensor(order, dtype=torch.int64)
    raise ValueError(mode)


def prepare(W32, H32, p, u_noise=0.0):
    """Steps 1-5. Returns dict with W (double, permuted), U, d, tau, perm, dead."""
    W = W32.to(F64).clone()
    H = H32.to(F64).clone()
    rows, cols = W.shape
    perm = permutation(H, p.perm)
    W = W[:, perm].clone()
    H = H[perm][:, perm].clone()
    diag = torch.diagonal(H).clone()
    dead = diag == 0
    damp = as_f32_param(p.percdamp) * diag.abs().mean()
    idx = torch.arange(cols)
    if p.percdamp > 0:
        H[idx, idx] += damp
    H[idx[dead], idx[dead]] = 1.0
    W[:, dead] = 0.0
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    Hinv = (Hinv + Hinv.T) / 2
    U = torch.linalg.cholesky(Hinv, upper=True)
    if u_noise:
        # test hook: emulate another LAPACK's rounding of the factorization
        g = torch.Generator().manual_seed(12345)
        U = torch.triu(U * (1 + u_noise * torch.randn(U.shape, generator=g, dtype=F64)))
    d = torch.diagonal(U).clone()
    thr = as_f32_param(p.outlier_threshold)
    if math.isfinite(thr) and thr > 0:
        if rows > 1:
            var = W.var(dim=0, unbiased=True)
        else:
            var = torch.zeros(cols, dtype=F64)
        tau = thr * float((var / d ** 2).mean())
    else:
        tau = math.inf
    return dict(W=W, U=U, d=d, tau=tau, perm=perm, dead=dead)


def quantize_column(w, sdq, zdq, maxq, margins=None):
    """w double [rows]; sdq, zdq fp32 [rows] -> what as fp32 [rows]."""
    x = w / sdq.to(F64).clamp_min(1e-9) + zdq.to(F64)
    if margins is not None:
        # w == 0 exactly (dead columns) gives x == zdq with no rounding noise at
        # all; a tie there is exact and tests round-half-to-even, not robustness
        zero = w == 0
        margins["exact_zero_ties"] += int((zero & (x - torch.floor(x) == 0.5)).sum())
        _note_margin(margins, "round", x[~zero], maxq)
    q = torch.clamp(torch.round(x), 0.0, float(maxq))
    return sdq * (q.to(F32) - zdq)


def quantize_layer(W32, H32, p, u_noise=0.0):
    """Returns (W_hat fp32 [rows, cols] original order, mask uint8, rel_error, info)."""
    assert W32.dtype == F32 and H32.dtype == F32
    rows, cols = W32.shape
    st = prepare(W32, H32, p, u_noise)
    W, U, d, tau = st["W"], st["U"], st["d"], st["tau"]
    maxq = 2 ** p.wbits - 1
    g = p.groupsize if p.groupsize > 0 else cols
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    E = torch.zeros(rows, cols, dtype=F64)
    sdq = zdq = None
    # smallest distances to a decision boundary, to judge how robust the
    # fixture is to the C engine's different (LAPACK) rounding
    margins = {"round": math.inf, "outlier": math.inf, "stat_round": math.inf, "loo": math.inf,
               "exact_zero_ties": 0}
    B = p.blocksize
    for b0 in range(0, cols, B):
        b1 = min(b0 + B, cols)
        pending = b0  # errors of columns [pending, j) not yet applied to columns >= b1
        for j in range(b0, b1):
            if j % g == 0:
                g1 = min(j + g, cols)
                if p.gptq and g1 > b1 and j > pending:
                    # The group straddles the block end: its columns beyond b1
                    # must see every earlier column's update before the fit,
                    # as in the unblocked loop. Flush the block's pending part.
                    W[:, b1:] -= E[:, pending:j] @ U[pending:j, b1:]
                    pending = j
                sdq, zdq = fit_group(W[:, j:g1].clone(), d[j:g1], tau, p, margins)
            w = W[:, j].clone()
            what = quantize_column(w, sdq, zdq, maxq, margins).to(F64)
            e = (w - what) / d[j]
            if math.isfinite(tau):
                margins["outlier"] = min(margins["outlier"], float((e * e / tau - 1).abs().min()))
                out = e * e > tau
                if out.any():
                    wf = w.to(F32)
                    if (wf[out].abs() > 65504).any():
                        raise FloatingPointError("outlier value saturates fp16")
                    what = torch.where(out, wf.to(F16).to(F64), what)
                    e = (w - what) / d[j]
                    mask[:, j] = out
            W[:, j] = what
            E[:, j] = e
            if p.gptq and j + 1 < b1:
                W[:, j + 1:b1] -= torch.outer(e, U[j, j + 1:b1])
        if p.gptq and b1 < cols:
            W[:, b1:] -= E[:, pending:b1] @ U[pending:b1, b1:]
    perm = st["perm"]
    W_hat = torch.empty(rows, cols, dtype=F32)
    M = torch.empty(rows, cols, dtype=torch.uint8)
    W_hat[:, perm] = W.to(F32)  # exact: every entry already is an fp32 value
    M[:, perm] = mask.to(torch.uint8)
    rel = rel_hessian_error(W32, W_hat, H32)
    info = dict(tau=tau, n_outliers=int(M.sum()), perm=perm, dead=int(st["dead"].sum()),
                margins=margins)
    return W_hat, M, rel, info


def rel_hessian_error(W32, W_hat32, H32):
    W = W32.to(F64)
    H = H32.to(F64)
    dW = W_hat32.to(F64) - W
    num = float(((dW @ H) * dW).sum())
    den = float(((W @ H) * W).sum())
    return num / den


def formula_bits(p, rows, cols, n_outliers):
    g = p.groupsize if p.groupsize > 0 else cols
    qs = p.qq_scale_bits if p.qq_scale_bits > 0 else 16
    zeros_bilevel = (p.qq_zero_bits > 0 and not p.sym
                     and not (p.round_zero and p.qq_zero_bits >= p.wbits))
    qz = p.qq_zero_bits if zeros_bilevel else 16
    bits = p.wbits + (qs + qz) / g
    if p.qq_scale_bits > 0:
        bits += 32.0 / (g * p.qq_groupsize)
    if zeros_bilevel:
        bits += 32.0 / (g * p.qq_groupsize)
    return bits + 32.0 * n_outliers / (rows * cols)
