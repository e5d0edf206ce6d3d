#!/usr/bin/env python3
"""Does the --target-bits loss proxy track the model's output? (issue 14)

An independent PyTorch Llama (checked against spqr's own fp16 log-probs)
quantizes the default model's linears with round-to-nearest (groups of 64,
2-8 bits) and compares, per linear, the Hessian-weighted error
tr(dW H dW^T) (H from calibration inputs) with the KL that quantizing that
linear alone causes on held-out windows; checks that single-linear KLs add
up to the KL of all; then allocates bits by dynamic programming under three
proxies (absolute tr(dW H dW^T), measured sensitivity x that, relative
error) and measures each allocation's KL. Also: how many calibration tokens
the sensitivity needs (sensitivities from a few calibration windows against
8 x 256 held-out tokens).

The token windows come from spqr's own KL base files (they store the
evaluated tokens):
  build/spqr perplexity models/default -f data/calib.txt -c 256 --chunks 16 --kl-base /tmp/calib.kl
  build/spqr perplexity models/default -f data/heldout.txt -c 256 --chunks 8 --kl-base /tmp/held.kl
usage: /usr/bin/python3 bench/budget_proxy.py models/default /tmp/calib.kl /tmp/held.kl
"""
import json, struct, sys, time

import numpy as np
import torch
torch.set_num_threads(1)
def load(d):
    cfg = json.load(open(d + "/config.json"))
    with open(d + "/model.safetensors", "rb") as f:
        n, = struct.unpack("<Q", f.read(8)); h = json.loads(f.read(n)); raw = f.read()
    W = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        dt = {"F16": np.float16, "F32": np.float32}[v["dtype"]]
        W[k] = torch.from_numpy(np.frombuffer(raw[a:b], dtype=dt).reshape(v["shape"]).astype(np.float32))
    return cfg, W
def read_kl(path, with_logp=False):
    with open(path, "rb") as f:
        hdr = f.read(56)
        magic = hdr[:8]; version, protocol, ctx, vocab, nw, first = struct.unpack("<6I", hdr[8:32])
        npos, = struct.unpack("<Q", hdr[32:40])
        toks = np.frombuffer(f.read(4 * nw * ctx), dtype=np.int32).reshape(nw, ctx)
        logp = np.frombuffer(f.read(), dtype=np.float32).reshape(npos, vocab) if with_logp else None
    return dict(protocol=protocol, ctx=ctx, first=first, toks=torch.from_numpy(toks.astype(np.int64)), logp=logp)
KINDS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
def names(cfg):
    return ["model.layers.%d.%s.weight" % (l, k) for l in range(cfg["num_hidden_layers"]) for k in KINDS] + ["lm_head.weight"]
def rope(x, theta):  # x [B, H, T, D]
    T, D = x.shape[2], x.shape[3]
    inv = 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
    f = torch.outer(torch.arange(T).float(), inv); emb = torch.cat([f, f], -1)
    c, s = emb.cos(), emb.sin()
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * c + torch.cat([-x2, x1], -1) * s
def forward(cfg, W, toks, capture=None):
    """toks [B, T] -> log-probs [B, T, V]; capture: dict name -> list of inputs [N, cols]."""
    eps = cfg["rms_norm_eps"]; H = cfg["num_attention_heads"]; KV = cfg["num_key_value_heads"]
    D = cfg.get("head_dim", cfg["hidden_size"] // H); th = cfg.get("rope_theta", 10000.0)
    def norm(x, w): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    def lin(name, x):
        if capture is not None: capture.setdefault(name, []).append(x.reshape(-1, x.shape[-1]))
        return x @ W[name].T
    x = W["model.embed_tokens.weight"][toks]
    B, T, _ = x.shape
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = norm(x, W[p + "input_layernorm.weight"])
        q = lin(p + "self_attn.q_proj.weight", h).view(B, T, H, D).transpose(1, 2)
        k = lin(p + "self_attn.k_proj.weight", h).view(B, T, KV, D).transpose(1, 2)
        v = lin(p + "self_attn.v_proj.weight", h).view(B, T, KV, D).transpose(1, 2)
        q, k = rope(q, th), rope(k, th)
        k = k.repeat_interleave(H // KV, 1); v = v.repeat_interleave(H // KV, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + mask, -1) @ v
        x = x + lin(p + "self_attn.o_proj.weight", a.transpose(1, 2).reshape(B, T, H * D))
        h = norm(x, W[p + "post_attention_layernorm.weight"])
        g = lin(p + "mlp.gate_proj.weight", h); u = lin(p + "mlp.up_proj.weight", h)
        x = x + lin(p + "mlp.down_proj.weight", torch.nn.functional.silu(g) * u)
    x = norm(x, W["model.norm.weight"])
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    if capture is not None: capture.setdefault("lm_head.weight", []).append(x.reshape(-1, x.shape[-1]))
    return torch.log_softmax(x @ head.T, -1)
def rtn(Wt, bits, g):
    """asymmetric min-max RTN, groups of g along the input dim."""
    r, c = Wt.shape; x = Wt.reshape(r, c // g, g)
    lo, hi = x.min(-1, keepdim=True).values, x.max(-1, keepdim=True).values
    s = (hi - lo).clamp(min=1e-8) / (2 ** bits - 1); z = torch.round(-lo / s)
    q = torch.clamp(torch.round(x / s) + z, 0, 2 ** bits - 1)
    return ((q - z) * s).reshape(r, c)


def main():
    cfg, W = load(sys.argv[1])
    cal = read_kl(sys.argv[2]); ev = read_kl(sys.argv[3], with_logp=True)
    NC = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    NE = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    ctok, etok = cal["toks"][:NC], ev["toks"][:NE]
    t0 = time.time()
    with torch.no_grad():
        cap = {}
        forward(cfg, W, ctok, capture=cap)
        Hs = {k: (torch.cat(v) .T @ torch.cat(v)) / sum(x.shape[0] for x in v) for k, v in cap.items()}
        base = forward(cfg, W, etok)
        # check the torch forward against spqr's own fp16 log-probs (first window, scored rows)
        ref = torch.from_numpy(ev["logp"][:255].copy())
        print("torch vs spqr logp max abs diff (window 0):", float((base[0, :255] - ref).abs().max()), flush=True)
        def kl_of(Wq):
            lp = forward(cfg, Wq, etok)[:, :-1]; b = base[:, :-1]
            return float((b.exp() * (b - lp)).sum(-1).mean())
        items = names(cfg)
        BITS = [2, 3, 4, 5, 6, 8]; G = 64
        e = np.zeros((len(items), len(BITS))); cost = np.zeros((len(items), len(BITS)), dtype=np.int64)
        Q = {}
        for i, n in enumerate(items):
            for j, b in enumerate(BITS):
                dq = rtn(W[n], b, G); Q[(i, j)] = dq; d = W[n] - dq
                e[i, j] = float(((d @ Hs[n]) * d).sum())
                cost[i, j] = W[n].numel() * b + W[n].numel() // G * 32
        # single-item KL at 3 bits: sensitivity = KL_i / e_i
        J = BITS.index(3); kl1 = np.zeros(len(items))
        for i, n in enumerate(items):
            Wq = dict(W); Wq[n] = Q[(i, J)]; kl1[i] = kl_of(Wq)
        sens = kl1 / e[:, J]
        print("t=%.0fs" % (time.time() - t0))
        print("item                                 e(w3)        KL(w3 alone)  KL/e")
        for i, n in enumerate(items):
            print("%-36s %.4e  %.4e  %.3e" % (n.replace("model.layers.", "L").replace(".weight", ""), e[i, J], kl1[i], sens[i]))
        print("corr(log e, log KL) over items: %.3f; KL/e spans %.1fx (min %.2e max %.2e)" % (
            np.corrcoef(np.log(e[:, J]), np.log(kl1))[0, 1], sens.max() / sens.min(), sens.min(), sens.max()))
        # all items at 3 bits: additivity
        Wq = dict(W)
        for i, n in enumerate(items): Wq[n] = Q[(i, J)]
        print("KL all w3: %.5f; sum of single-item KLs: %.5f" % (kl_of(Wq), kl1.sum()))
        def dp(err, budget, unit=4096):
            cap_ = budget // unit; INF = float("inf")
            best = np.zeros(cap_ + 1); picks = []
            for i in range(len(items)):
                nx = np.full(cap_ + 1, INF); pk = np.zeros(cap_ + 1, dtype=np.int64)
                for j in range(len(BITS)):
                    c = -(-cost[i, j] // unit)
                    if c > cap_: continue
                    v = np.full(cap_ + 1, INF); v[c:] = best[: cap_ + 1 - c] + err[i, j]
                    m = v < nx; nx[m] = v[m]; pk[m] = j
                best = nx; picks.append(pk)
            ch = [0] * len(items); c = cap_
            for i in range(len(items) - 1, -1, -1):
                j = picks[i][c]; ch[i] = j; c -= -(-cost[i, j] // unit)
            return ch
        npar = sum(W[n].numel() for n in items)
        for B in [2.75, 3.0, 3.5, 4.0, 4.5]:
            budget = int(B * npar)
            out = []
            for name, err in [("abs tr(dW H dW^T)", e), ("measured sens x e", e * sens[:, None]),
                              ("relative e/tr(WHW^T)", e / np.array([float(((W[n] @ Hs[n]) * W[n]).sum()) for n in items])[:, None])]:
                ch = dp(err, budget)
                Wq = dict(W)
                for i, n in enumerate(items): Wq[n] = Q[(i, ch[i])]
                bits = sum(cost[i, ch[i]] for i in range(len(items))) / npar
                out.append("%s: bits %.3f KL %.5f pred %.3e head w%d" % (name, bits, kl_of(Wq), sum(err[i, ch[i]] for i in range(len(items))), BITS[ch[-1]]))
            print("B=%.2f | " % B + " | ".join(out), flush=True)
        # uniform references
        for j, b in enumerate(BITS[:4]):
            Wq = dict(W)
            for i, n in enumerate(items): Wq[n] = Q[(i, j)]
            print("uniform w%d g%d: bits %.3f KL %.5f" % (b, G, b + 0.5, kl_of(Wq)), flush=True)
    print("total %.0fs" % (time.time() - t0))
    # how many calibration tokens the sensitivity needs
    def single_kls(toks):
        base = forward(cfg, W, toks); out = []
        for n in items:
            Wq = dict(W); Wq[n] = rtn(W[n], 3, 64)
            lp = forward(cfg, Wq, toks); out.append(float((base.exp() * (base - lp)).sum(-1).mean()))
        return np.array(out)
    with torch.no_grad():
        a = single_kls(etok)
        for nw, T in [(2, 128), (4, 128), (1, 256)]:
            b = single_kls(cal["toks"][:nw, :T]); r = np.log(b / a)
            print("sensitivity from calib %dx%d vs held-out %dx256: corr(log) %.3f, sd of log ratio %.2f (x%.2f)" % (
                nw, T, NE, np.corrcoef(np.log(a), np.log(b))[0, 1], r.std(), np.exp(r.std())), flush=True)


if __name__ == "__main__":
    main()
