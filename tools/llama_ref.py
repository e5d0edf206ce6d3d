#!/usr/bin/python3
"""Reference Llama implementation in plain PyTorch (no `transformers`).

This is the independent reference the C model is tested against, so it is
written to match Hugging Face `LlamaForCausalLM` numerically:

  * parameter names are the HF ones (model.embed_tokens.weight, ...);
  * RMSNorm is computed in float32: x * rsqrt(mean(x^2) + eps), then cast
    back to the input dtype and multiplied by the weight;
  * RoPE uses the HF "rotate-half" layout: inv_freq = 1/theta^(arange(0,hd,2)/hd),
    cos/sin of cat(freqs, freqs), q*cos + rotate_half(q)*sin;
    optional rope_scaling {"rope_type": "llama3", ...} as in HF;
  * grouped-query attention with a causal mask, softmax in float32;
  * SwiGLU MLP: down(silu(gate(x)) * up(x));
  * final RMSNorm and lm_head (tied to embed_tokens when tie_word_embeddings).

Also: save_hf_dir / load_hf_dir (config.json + model.safetensors, written and
read by hand, no safetensors package) and perplexity() implementing the
evaluation protocol of /work/shared/spqr-method.md section 6.

Run with /usr/bin/python3 (Debian's python3-torch).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- config --

@dataclass
class LlamaConfig:
    """Field names match transformers.LlamaConfig."""
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: Optional[int] = None          # None -> hidden_size // num_attention_heads
    max_position_embeddings: int = 512
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    bos_token_id: int = 0
    eos_token_id: int = 0
    rope_scaling: Optional[dict] = None     # e.g. {"rope_type": "llama3", "factor": 8.0, ...}
    hidden_act: str = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False

    def __post_init__(self):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")

    def to_hf_dict(self, torch_dtype: str = "float16") -> dict:
        d = dataclasses.asdict(self)
        d.update({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "torch_dtype": torch_dtype,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "pretraining_tp": 1,
            "use_cache": True,
        })
        return d

    @classmethod
    def from_hf_dict(cls, d: dict) -> "LlamaConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        # HF allows eos_token_id to be a list; keep the first for our purposes.
        if isinstance(kw.get("eos_token_id"), list):
            kw["eos_token_id"] = kw["eos_token_id"][0]
        return cls(**kw)


# ---------------------------------------------------------------- layers --

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rope_inv_freq(cfg: LlamaConfig) -> torch.Tensor:
    """inv_freq[i] = 1 / theta^(2i/hd), with optional llama3 frequency scaling."""
    hd = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = cfg.rope_scaling
    if rs is not None:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "llama3":
            factor = rs["factor"]
            low = rs.get("low_freq_factor", 1.0)
            high = rs.get("high_freq_factor", 4.0)
            old_ctx = rs["original_max_position_embeddings"]
            low_wavelen = old_ctx / low
            high_wavelen = old_ctx / high
            wavelen = 2 * math.pi / inv_freq
            # long wavelengths (low frequencies) are divided by factor
            scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
            smooth = (old_ctx / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            is_medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
            inv_freq = torch.where(is_medium, smoothed, scaled)
        elif kind in (None, "default"):
            pass
        else:
            raise ValueError(f"unsupported rope_scaling type {kind!r}")
    return inv_freq


def rope_cos_sin(cfg: LlamaConfig, positions: torch.Tensor):
    """positions: [T] int64 -> cos, sin: [T, head_dim] float32 (HF cat(freqs, freqs) layout)."""
    inv_freq = rope_inv_freq(cfg)
    freqs = positions.float()[:, None] * inv_freq[None, :]      # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)                     # [T, hd]
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, hd]; cos/sin: [T, hd]."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.num_attention_heads * hd, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        c = self.cfg
        hd = c.head_dim
        q = self.q_proj(x).view(B, T, c.num_attention_heads, hd).transpose(1, 2)   # [B,H,T,hd]
        k = self.k_proj(x).view(B, T, c.num_key_value_heads, hd).transpose(1, 2)   # [B,KV,T,hd]
        v = self.v_proj(x).view(B, T, c.num_key_value_heads, hd).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        rep = c.num_attention_heads // c.num_key_value_heads
        if rep > 1:  # query head h uses kv head h // rep (HF repeat_kv)
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)                               # [B,H,T,T]
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att.float(), dim=-1).to(q.dtype)
        y = att @ v                                                                   # [B,H,T,hd]
        y = y.transpose(1, 2).reshape(B, T, c.num_attention_heads * hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class LlamaModel(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def output_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def forward(self, ids: torch.Tensor, return_hidden: bool = False):
        """ids: [B, T] int64 (positions 0..T-1) -> logits [B, T, vocab]."""
        B, T = ids.shape
        cos, sin = rope_cos_sin(self.config, torch.arange(T, device=ids.device))
        x = self.model.embed_tokens(ids)
        hidden = [x]
        for layer in self.model.layers:
            x = layer(x, cos, sin)
            hidden.append(x)
        x = self.model.norm(x)
        logits = x @ self.output_weight().t()
        if return_hidden:
            return logits, hidden
        return logits

    def hf_state_dict(self) -> dict:
        """State dict with exactly the HF tensor names (no lm_head when tied)."""
        sd = self.state_dict()
        if self.config.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        return sd


# ------------------------------------------------------------ safetensors --

_ST_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.float64: "F64", torch.bool: "BOOL",
}
_ST_DTYPES_INV = {v: k for k, v in _ST_DTYPES.items()}


def save_safetensors(tensors: dict, path: str, metadata: Optional[dict] = None) -> None:
    """Write the safetensors format by hand: u64 LE header length, JSON header, raw data.
    Tensors are written in sorted-name order, contiguous, little-endian. Atomic."""
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _ST_DTYPES:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # pad so data starts 8-byte aligned
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-st-")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    with os.fdopen(fd, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path: str) -> dict:
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = _ST_DTYPES_INV[info["dtype"]]
        raw = bytearray(buf[base + a: base + b])
        if dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(info["shape"]).clone()
    return out


_DTYPE_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}


def save_hf_dir(model: LlamaForCausalLM, tokenizer_json, outdir: str, dtype=torch.float16) -> None:
    """Write an HF-style model directory: config.json, model.safetensors and
    (if given) tokenizer.json. tokenizer_json may be a dict, a JSON string or a path."""
    os.makedirs(outdir, exist_ok=True)
    cfg = model.config.to_hf_dict(_DTYPE_NAMES[dtype])
    _write_text_atomic(os.path.join(outdir, "config.json"), json.dumps(cfg, indent=2) + "\n")
    tensors = {k: v.to(dtype) for k, v in model.hf_state_dict().items()}
    save_safetensors(tensors, os.path.join(outdir, "model.safetensors"), {"format": "pt"})
    if tokenizer_json is not None:
        if isinstance(tokenizer_json, dict):
            text = json.dumps(tokenizer_json, ensure_ascii=False, indent=1)
        elif isinstance(tokenizer_json, str) and os.path.exists(tokenizer_json):
            with open(tokenizer_json, encoding="utf-8") as f:
                text = f.read()
        else:
            text = str(tokenizer_json)
        _write_text_atomic(os.path.join(outdir, "tokenizer.json"), text)


def load_hf_dir(d: str, dtype=torch.float32) -> LlamaForCausalLM:
    """Load config.json + model.safetensors; weights are converted to `dtype`
    (default float32, i.e. the F16 values exactly, computed in fp32)."""
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        cfg = LlamaConfig.from_hf_dict(json.load(f))
    model = LlamaForCausalLM(cfg)
    sd = load_safetensors(os.path.join(d, "model.safetensors"))
    sd = {k: v.to(dtype) for k, v in sd.items()}
    if cfg.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
        if hasattr(model, "lm_head"):
            pass
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    unexpected = [u for u in unexpected if not (cfg.tie_word_embeddings and u == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    model.to(dtype)
    model.eval()
    return model


def _write_text_atomic(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    os.chmod(tmp, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------- perplexity --

@torch.no_grad()
def perplexity(model: LlamaForCausalLM, ids, seqlen: int, batch: int = 8) -> dict:
    """Protocol of spqr-method.md section 6.

    The token sequence `ids` (the whole evaluation text tokenized once) is cut
    into n = len(ids) // seqlen non-overlapping windows of exactly seqlen
    tokens; the LAST PARTIAL WINDOW (len(ids) % seqlen tokens) IS DROPPED.
    Each window is run from position 0; every token of the window except the
    first (which has no in-window context) is scored, so tokens_scored =
    n * (seqlen - 1). ppl = exp(mean NLL), NLL accumulated in float64.
    Returns {"ppl", "nll", "seqlen", "windows", "tokens_scored"}.
    """
    ids = torch.as_tensor(list(ids) if not torch.is_tensor(ids) else ids, dtype=torch.long)
    n = ids.numel() // seqlen
    if n == 0:
        raise ValueError(f"need at least {seqlen} tokens, have {ids.numel()}")
    win = ids[: n * seqlen].view(n, seqlen)
    total = 0.0
    count = 0
    for s in range(0, n, batch):
        x = win[s: s + batch]
        logits = model(x).float()                          # [b, T, V]
        logp = F.log_softmax(logits[:, :-1], dim=-1)
        tgt = x[:, 1:]
        nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        total += nll.double().sum().item()
        count += nll.numel()
    mean = total / count
    return {"ppl": math.exp(mean), "nll": mean, "seqlen": seqlen, "windows": n, "tokens_scored": count}


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Held-out perplexity of an HF Llama dir (reference).")
    ap.add_argument("model_dir")
    ap.add_argument("text")
    ap.add_argument("--seqlen", type=int, default=256)
    args = ap.parse_args()
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bpe_tokenizer import BPETokenizer
    torch.set_num_threads(2)
    tok = BPETokenizer.load(os.path.join(args.model_dir, "tokenizer.json"))
    with open(args.text, encoding="utf-8") as f:
        ids = tok.encode(f.read())
    m = load_hf_dir(args.model_dir)
    r = perplexity(m, ids, args.seqlen)
    print(json.dumps({"heldout_ppl": r["ppl"], "seqlen": r["seqlen"], "tokens_scored": r["tokens_scored"],
                      "windows": r["windows"], "text": args.text}))
