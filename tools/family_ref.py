#!/usr/bin/python3
"""Reference forward passes (float64 PyTorch, no `transformers`) for the decoder
families the C model loads: llama, mistral, qwen2, qwen3, phi3, gemma, gemma2.

The independent reference the C families are tested against
(tests/fixtures/families/, made by tools/make_family_fixtures.py). One
functional forward reads an HF config.json dict and an HF state dict (the
checkpoint's own tensor names) and follows Hugging Face transformers'
modeling_<family>.py in eager mode. Files read (github huggingface/transformers):
  models/gemma2/modeling_gemma2.py  @006e869 (v4.47 era): Gemma2RMSNorm, Gemma2MLP
      (ACT2FN[hidden_activation]), query_pre_attn_scalar**-0.5, attention softcap
      before the mask, even layer_idx slides, post/pre/post-feedforward norms,
      normalizer = tensor(hidden_size**0.5, dtype=hidden dtype), final softcap;
  models/qwen3/modeling_qwen3.py    @000c33f (v5 dev): q_norm/k_norm (RMSNorm over
      head_dim) before RoPE, head_dim from config;
  models/phi3/modeling_phi3.py      @43c2b48 (v4.48 era): qkv_proj split [q | k | v],
      gate_up_proj chunk(2) = [gate | up], sliding_window passed to every layer;
  models/qwen2/modeling_qwen2.py    @00d4b3d (v4.56 era): q/k/v_proj bias=True always
      (no attention_bias key), o_proj bias=False, sliding only on "sliding_attention" layers;
  models/mistral/modeling_mistral.py (v4.5x): Llama plus, when config.sliding_window
      is set, create_sliding_window_causal_mask for every layer;
  masking_utils.py (v4.53+) sliding_window_overlay: query i sees key j iff
      i - W < j <= i (W keys including itself), as the older
      _prepare_4d_causal_attention_mask_with_cache_position did;
  Qwen2Config/Qwen3Config: sliding_window = None unless use_sliding_window,
      then layers i >= max_window_layers slide;
  GemmaMLP of v4.38-v4.47: the activation is hidden_activation, or tanh GELU when
      that is absent (Gemma 1.0 configs say "hidden_act": "gelu", which those
      versions ignore; later versions read hidden_act, a regression).
Llama (tools/llama_ref.py) is the same forward with no extras; the RoPE
frequencies (default and llama3 scaling) are llama_ref's, computed in float32
like HF (inv_freq, angles and cos/sin in float32, then widened).

Everything else runs in float64 on the stored weights (BF16/F32 widened
exactly); the only dtype-dependent constant is Gemma's embedding normalizer,
which HF rounds to the run dtype (config torch_dtype): bf16(sqrt(72)) = 8.5.

Also forward_incremental(): the same model one token at a time with a per-layer
KV cache that drops keys outside the window (a ring buffer), a second code
path for the masks that tools/make_family_fixtures.py checks against forward().

Run with /usr/bin/python3 (Debian's python3-torch).
"""
from __future__ import annotations

import math
import os
import sys
from types import SimpleNamespace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as L  # noqa: E402

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2")

# tie_word_embeddings when config.json omits it (each family's HF config default)
_TIE_DEFAULT = {"llama": False, "mistral": False, "qwen2": False, "qwen3": False,
                "phi3": False, "gemma": True, "gemma2": True}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def family(cfg: dict) -> str:
    f = cfg.get("model_type")
    if f not in FAMILIES:
        raise ValueError(f"unsupported model_type {f!r}")
    return f


def head_dim(cfg: dict) -> int:
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def n_kv_heads(cfg: dict) -> int:
    return cfg.get("num_key_value_heads") or cfg["num_attention_heads"]


def tied(cfg: dict) -> bool:
    return bool(cfg.get("tie_word_embeddings", _TIE_DEFAULT[family(cfg)]))


def layer_window(cfg: dict, i: int):
    """Sliding window W of layer i, or None for full causal attention."""
    f = family(cfg)
    w = cfg.get("sliding_window")
    if f in ("mistral", "phi3"):
        return w
    if f in ("qwen2", "qwen3"):
        if w is None or not cfg.get("use_sliding_window", False):
            return None
        return w if i >= cfg.get("max_window_layers", 0) else None
    if f == "gemma2":
        return w if i % 2 == 0 else None
    return None


def activation_name(cfg: dict) -> str:
    if family(cfg) in ("gemma", "gemma2"):  # hidden_act is not read (see the module docstring)
        return cfg.get("hidden_activation") or "gelu_pytorch_tanh"
    return cfg.get("hidden_act", "silu")


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "silu":
        return x * torch.sigmoid(x)
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if name == "gelu":  # exact (erf) GELU
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ValueError(f"unsupported activation {name!r}")


def tensor_shapes(cfg: dict) -> dict:
    """HF checkpoint tensor names -> shapes for this config (what a loader must find)."""
    f = family(cfg)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv, hd = cfg["num_attention_heads"], n_kv_heads(cfg), head_dim(cfg)
    s = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H]}
    if not tied(cfg):
        s["lm_head.weight"] = [V, H]
    bias = f == "qwen2" or bool(cfg.get("attention_bias", False))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = [H]
        s[p + "post_attention_layernorm.weight"] = [H]
        if f == "gemma2":
            s[p + "pre_feedforward_layernorm.weight"] = [H]
            s[p + "post_feedforward_layernorm.weight"] = [H]
        a = p + "self_attn."
        if f == "phi3":
            s[a + "qkv_proj.weight"] = [(nh + 2 * nkv) * hd, H]
        else:
            s[a + "q_proj.weight"] = [nh * hd, H]
            s[a + "k_proj.weight"] = [nkv * hd, H]
            s[a + "v_proj.weight"] = [nkv * hd, H]
            if bias:
                s[a + "q_proj.bias"] = [nh * hd]
                s[a + "k_proj.bias"] = [nkv * hd]
                s[a + "v_proj.bias"] = [nkv * hd]
        s[a + "o_proj.weight"] = [H, nh * hd]
        if f != "qwen2" and cfg.get("attention_bias", False):
            s[a + "o_proj.bias"] = [H]
        if f == "qwen3":
            s[a + "q_norm.weight"] = [hd]
            s[a + "k_norm.weight"] = [hd]
        m = p + "mlp."
        if f == "phi3":
            s[m + "gate_up_proj.weight"] = [2 * I, H]
        else:
            s[m + "gate_proj.weight"] = [I, H]
            s[m + "up_proj.weight"] = [I, H]
        s[m + "down_proj.weight"] = [H, I]
    return s


def _gemma_norm(cfg: dict) -> bool:
    return family(cfg) in ("gemma", "gemma2")


def _rms(cfg: dict, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    n = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg["rms_norm_eps"])
    return n * (1.0 + w) if _gemma_norm(cfg) else n * w


def _lin(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    y = x @ sd[name + ".weight"].t()
    b = sd.get(name + ".bias")
    return y + b if b is not None else y


def rope_cos_sin(cfg: dict, pos: torch.Tensor):
    """pos [t] int64 -> cos, sin [t, head_dim] float64 (HF rotate-half layout, float32 angles)."""
    if cfg.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("partial_rotary_factor != 1 is not supported")
    rs = cfg.get("rope_scaling")
    if rs is not None and rs.get("rope_type", rs.get("type")) not in ("llama3", "default"):
        raise ValueError(f"unsupported rope_scaling {rs!r}")
    inv = L.rope_inv_freq(SimpleNamespace(head_dim=head_dim(cfg), rope_theta=float(cfg.get("rope_theta", 10000.0)),
                                          rope_scaling=rs))
    freqs = pos.float()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().double(), emb.sin().double()


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [t, heads, hd]; cos/sin [t, hd]."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos[:, None, :] + L.rotate_half(x) * sin[:, None, :]


def embed(cfg: dict, sd: dict, ids: torch.Tensor) -> torch.Tensor:
    x = sd["model.embed_tokens.weight"][ids]
    if _gemma_norm(cfg):
        dt = _DTYPES[cfg.get("torch_dtype", "float32")]
        x = x * float(torch.tensor(cfg["hidden_size"] ** 0.5, dtype=dt))
    return x


def _qkv(cfg: dict, sd: dict, i: int, h: torch.Tensor, pos: torch.Tensor):
    """Projections of the normalized input h [t, H] at positions pos -> q [t,nh,hd], k, v [t,nkv,hd]."""
    f = family(cfg)
    nh, nkv, hd = cfg["num_attention_heads"], n_kv_heads(cfg), head_dim(cfg)
    a = f"model.layers.{i}.self_attn."
    if f == "phi3":
        q, k, v = _lin(sd, a + "qkv_proj", h).split([nh * hd, nkv * hd, nkv * hd], dim=-1)
    else:
        q, k, v = _lin(sd, a + "q_proj", h), _lin(sd, a + "k_proj", h), _lin(sd, a + "v_proj", h)
    t = h.shape[0]
    q, k, v = q.reshape(t, nh, hd), k.reshape(t, nkv, hd), v.reshape(t, nkv, hd)
    if f == "qwen3":  # plain RMSNorm over each head's hd values, before RoPE
        q = _rms(cfg, q, sd[a + "q_norm.weight"])
        k = _rms(cfg, k, sd[a + "k_norm.weight"])
    cos, sin = rope_cos_sin(cfg, pos)
    return _rope(q, cos, sin), _rope(k, cos, sin), v


def _attend(cfg: dict, q, k, v, qpos, kpos, window) -> torch.Tensor:
    """q [tq,nh,hd] at qpos; k, v [tk,nkv,hd] at kpos -> [tq, nh*hd]."""
    nh, hd = q.shape[1], q.shape[2]
    rep = nh // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)  # query head h reads kv head h // rep (HF repeat_kv)
    v = v.repeat_interleave(rep, dim=1)
    if family(cfg) == "gemma2":
        scale = float(cfg["query_pre_attn_scalar"]) ** -0.5
    else:
        scale = hd ** -0.5
    s = torch.einsum("qhd,khd->hqk", q, k) * scale
    cap = cfg.get("attn_logit_softcapping") if family(cfg) == "gemma2" else None
    if cap is not None:
        s = torch.tanh(s / cap) * cap
    ok = kpos[None, :] <= qpos[:, None]
    if window is not None:
        ok = ok & (kpos[None, :] > qpos[:, None] - window)
    s = s.masked_fill(~ok[None], float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.einsum("hqk,khd->qhd", p, v).reshape(q.shape[0], nh * hd)


def _mlp(cfg: dict, sd: dict, i: int, h: torch.Tensor) -> torch.Tensor:
    m = f"model.layers.{i}.mlp."
    if family(cfg) == "phi3":
        g, u = _lin(sd, m + "gate_up_proj", h).chunk(2, dim=-1)
    else:
        g, u = _lin(sd, m + "gate_proj", h), _lin(sd, m + "up_proj", h)
    return _lin(sd, m + "down_proj", _act(activation_name(cfg), g) * u)


def _block(cfg: dict, sd: dict, i: int, x: torch.Tensor, attn) -> torch.Tensor:
    """One decoder layer; attn(h) returns the attention output before o_proj."""
    p = f"model.layers.{i}."
    a = _lin(sd, p + "self_attn.o_proj", attn(_rms(cfg, x, sd[p + "input_layernorm.weight"])))
    if family(cfg) == "gemma2":
        x = x + _rms(cfg, a, sd[p + "post_attention_layernorm.weight"])
        m = _mlp(cfg, sd, i, _rms(cfg, x, sd[p + "pre_feedforward_layernorm.weight"]))
        return x + _rms(cfg, m, sd[p + "post_feedforward_layernorm.weight"])
    x = x + a
    return x + _mlp(cfg, sd, i, _rms(cfg, x, sd[p + "post_attention_layernorm.weight"]))


def _head(cfg: dict, sd: dict, x: torch.Tensor) -> torch.Tensor:
    x = _rms(cfg, x, sd["model.norm.weight"])
    w = sd["model.embed_tokens.weight"] if tied(cfg) else sd["lm_head.weight"]
    logits = x @ w.t()
    cap = cfg.get("final_logit_softcapping") if family(cfg) == "gemma2" else None
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def check_state_dict(cfg: dict, sd: dict) -> None:
    want = tensor_shapes(cfg)
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        raise ValueError(f"state dict mismatch: missing={missing} unexpected={extra}")
    for n, shp in want.items():
        if list(sd[n].shape) != shp:
            raise ValueError(f"{n}: shape {list(sd[n].shape)} != {shp}")


@torch.no_grad()
def forward(cfg: dict, sd: dict, ids, dtype=torch.float64) -> torch.Tensor:
    """Whole sequence at positions 0..T-1 -> logits [T, vocab] (float64; float32 only to
    estimate what a float32 implementation's rounding alone changes)."""
    check_state_dict(cfg, sd)
    sd = {k: v.to(dtype) for k, v in sd.items()}
    ids = torch.as_tensor(ids, dtype=torch.long)
    pos = torch.arange(ids.numel())
    x = embed(cfg, sd, ids)
    for i in range(cfg["num_hidden_layers"]):
        def attn(h, i=i):
            q, k, v = _qkv(cfg, sd, i, h, pos)
            return _attend(cfg, q, k, v, pos, pos, layer_window(cfg, i))
        x = _block(cfg, sd, i, x, attn)
    return _head(cfg, sd, x)


@torch.no_grad()
def forward_incremental(cfg: dict, sd: dict, ids) -> torch.Tensor:
    """Same logits, one token at a time; a sliding layer's cache keeps only its last W keys."""
    check_state_dict(cfg, sd)
    sd = {k: v.double() for k, v in sd.items()}
    ids = torch.as_tensor(ids, dtype=torch.long)
    nl = cfg["num_hidden_layers"]
    cache = [([], [], []) for _ in range(nl)]  # per layer: positions, keys, values
    out = []
    for t in range(ids.numel()):
        pos = torch.tensor([t])
        x = embed(cfg, sd, ids[t:t + 1])
        for i in range(nl):
            def attn(h, i=i):
                q, k, v = _qkv(cfg, sd, i, h, pos)
                P, K, Vv = cache[i]
                P.append(t)
                K.append(k)
                Vv.append(v)
                w = layer_window(cfg, i)
                if w is not None and len(P) > w:  # evict the oldest: the ring buffer of size W
                    del P[0], K[0], Vv[0]
                return _attend(cfg, q, torch.cat(K), torch.cat(Vv), pos, torch.tensor(P), None)
            x = _block(cfg, sd, i, x, attn)
        out.append(_head(cfg, sd, x))
    return torch.cat(out)
