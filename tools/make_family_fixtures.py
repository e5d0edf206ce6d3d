#!/usr/bin/python3
"""Tiny random checkpoints of each model family, with float64 reference logits.

Writes, under tests/fixtures/families/ (or the directory given as argv[1]):
  <family>/config.json        the family's real config.json field names (as in
                              Llama-3.2-1B, Mistral-7B-v0.1, Qwen2.5-0.5B, Qwen3-0.6B,
                              Phi-3-mini-4k-instruct, gemma-2b, gemma-2-2b), tiny values
  <family>/model.safetensors  random weights, HF tensor names, F32 or BF16
  <family>/tokenizer.json     the byte-level BPE of tools/make_model_fixtures.py (vocab 300)
  logits.safetensors          <family>.ids I32 [T], <family>.logits F32 [T, vocab]:
                              tools/family_ref.py forward in float64 on the stored weights

Before writing, it checks the reference and refuses to write if a check fails:
  * family_ref's llama forward equals tools/llama_ref.py on tests/fixtures/tiny_gqa and
    tiny_tied (max|diff| / max|logit| < 1e-5: llama_ref rounds RMSNorm and softmax
    through float32 as HF does, family_ref stays in float64);
  * for every fixture, forward_incremental (one token at a time, ring-buffer KV cache
    of W keys on sliding layers) equals forward (< 1e-9);
  * invariants: mistral with sliding_window >= T equals llama on the same weights;
    qwen2 with zero biases equals llama; phi3 with its fused tensors split equals llama
    (q/k/v and gate/up); qwen3 is unchanged when q_proj/k_proj rows are scaled by 7
    (q_norm/k_norm undo it, up to eps); gemma2 with caps off, windows off,
    query_pre_attn_scalar = head_dim and the two extra norms made identities by
    weight -1 on a 1-row... (see invariant_gemma2) equals gemma;
  * every feature the fixture is meant to exercise changes the logits: turning it
    off (window, biases, q/k norms, softcaps, tanh GELU -> exact GELU, bf16
    normalizer -> f32 sqrt, ...) changes max|logit diff| / max|logit| by more than
    30 times what computing the same forward in float32 changes (the noise floor).
Prints that table. Deterministic (fixed seeds, one torch thread).

Run: /usr/bin/python3 tools/make_family_fixtures.py [outdir]
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import family_ref as R          # noqa: E402
import llama_ref as L           # noqa: E402
import make_model_fixtures as M  # noqa: E402

T = 40  # sequence length of every reference; sliding windows are 8

_COMMON = {"attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True}

CONFIGS = {
    # Llama-3.2-1B: GQA, explicit head_dim, llama3 rope scaling, tied, bf16
    "llama": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
        "bos_token_id": 0, "eos_token_id": 0, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
        "intermediate_size": 128, "max_position_embeddings": 2048, "mlp_bias": False,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 16, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 300},
    # Mistral-7B-v0.1: no head_dim key, sliding_window on every layer (8 < T)
    "mistral": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "bos_token_id": 0, "eos_token_id": 0,
        "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 160, "max_position_embeddings": 4096,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "sliding_window": 8, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "vocab_size": 300},
    # Qwen2.5-0.5B: q/k/v biases (no attention_bias key: always on), tied, window off, padded vocab
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "bos_token_id": 0, "eos_token_id": 0,
        "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 4096,
        "max_window_layers": 2, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 4096, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "use_mrope": False, "use_sliding_window": False, "vocab_size": 320},
    # Qwen3 (0.6B field names; untied like Qwen3-8B): q_norm/k_norm, head_dim 32 != 64/4
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False,
        "bos_token_id": 0, "eos_token_id": 0, "head_dim": 32, "hidden_act": "silu", "hidden_size": 64,
        "intermediate_size": 128, "max_position_embeddings": 4096, "max_window_layers": 3,
        "num_attention_heads": 4, "num_hidden_layers": 3, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_sliding_window": False, "vocab_size": 300},
    # Phi-3-mini-4k-instruct: fused qkv_proj / gate_up_proj, rope_scaling null, GQA 2:1 (so the
    # qkv split is uneven), sliding_window 2047 as published (does not bind at T), padded vocab
    "phi3": {
        "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "attention_bias": False,
        "bos_token_id": 0, "embd_pdrop": 0.0, "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 64,
        "intermediate_size": 128, "max_position_embeddings": 4096, "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "original_max_position_embeddings": 4096,
        "pad_token_id": 0, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": None,
        "rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": False, "torch_dtype": "float32",
        "vocab_size": 312},
    # gemma-2b: MQA, head_dim 32 != 72/4, tanh GELU, (1+w) norms, embed * bf16(sqrt(72)) = 8.5,
    # tied by default (no tie_word_embeddings key, no lm_head tensor)
    "gemma": {
        "architectures": ["GemmaForCausalLM"], "model_type": "gemma", "attention_bias": False,
        "bos_token_id": 0, "eos_token_id": 0, "head_dim": 32, "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 72, "intermediate_size": 128, "max_position_embeddings": 8192,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 1, "pad_token_id": 0,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000.0, "torch_dtype": "bfloat16",
        "vocab_size": 300},
    # gemma-2-2b: softcaps, four norms per layer, query_pre_attn_scalar 24 != head_dim 32,
    # even layers slide with window 8 < T, tied by default
    "gemma2": {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "attention_bias": False,
        "attn_logit_softcapping": 5.0, "bos_token_id": 0, "cache_implementation": "hybrid", "eos_token_id": 0,
        "final_logit_softcapping": 4.0, "head_dim": 32, "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 64, "intermediate_size": 128,
        "max_position_embeddings": 8192, "num_attention_heads": 4, "num_hidden_layers": 3,
        "num_key_value_heads": 2, "pad_token_id": 0, "query_pre_attn_scalar": 24, "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0, "sliding_window": 8, "torch_dtype": "float32", "vocab_size": 300},
}
SEEDS = {f: 100 + k for k, f in enumerate(R.FAMILIES)}


def random_weights(cfg: dict, seed: int) -> dict:
    """Random weights in float32, rounded to the config's torch_dtype (what is stored)."""
    g = torch.Generator().manual_seed(seed)
    gemma = R.family(cfg) in ("gemma", "gemma2")
    sd = {}
    for name, shp in R.tensor_shapes(cfg).items():
        if name.endswith("norm.weight"):  # gemma stores w of (1 + w)
            w = 0.2 * torch.randn(shp, generator=g) + (0.0 if gemma else 1.0)
        elif name.endswith(".bias"):
            w = 0.5 * torch.randn(shp, generator=g)
        elif name == "model.embed_tokens.weight":
            w = torch.randn(shp, generator=g)
        else:
            w = torch.randn(shp, generator=g) / shp[1] ** 0.5
            if any(s in name for s in ("q_proj", "k_proj", "qkv_proj")):
                w = w * 2.0  # sharper attention so positions, masks and windows matter
            elif gemma and "gate_proj" in name:
                w = w * 2.5  # pre-activations near |x| = 2.7, where tanh and exact GELU differ most
            elif gemma and "down_proj" in name:
                w = w * 4.0  # the MLP, not the sqrt(hidden)-scaled embedding, dominates the residual
        sd[name] = w
    dt = R._DTYPES[cfg["torch_dtype"]]
    return {k: v.to(dt).to(torch.float32) for k, v in sd.items()}


def maxdiff(a, b) -> float:
    return (a - b).abs().max().item()


def reldiff(a, ref) -> float:
    """max |a - ref| / max |ref|: the measure tests/test_model.c uses."""
    return maxdiff(a, ref) / ref.abs().max().item()


def as_llama(cfg: dict) -> dict:
    c = {k: v for k, v in cfg.items() if k not in ("sliding_window", "use_sliding_window", "max_window_layers")}
    c["model_type"] = "llama"
    c.setdefault("tie_word_embeddings", False)
    return c


# ------------------------------------------------------------------ checks --

def check_llama_ref(fix: str) -> list:
    """family_ref (llama) against tools/llama_ref.py on the committed llama fixtures."""
    out = []
    for name in ("tiny_gqa", "tiny_tied"):
        d = os.path.join(fix, name)
        with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        sd = {}
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".safetensors"):
                sd.update(L.load_safetensors(os.path.join(d, fn)))
        m = L.load_hf_dir(d, dtype=torch.float64) if os.path.exists(os.path.join(d, "model.safetensors")) else None
        if m is None:  # sharded: load the merged state dict into llama_ref by hand
            m = L.LlamaForCausalLM(L.LlamaConfig.from_hf_dict(cfg))
            sd2 = dict(sd)
            if cfg["tie_word_embeddings"]:
                sd2["lm_head.weight"] = sd2["model.embed_tokens.weight"]
            m.load_state_dict({k: v.double() for k, v in sd2.items()}, strict=False)
            m.double().eval()
        ids = torch.randint(0, 300, (48,), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            ref = m(ids[None])[0]
        got = R.forward(cfg, sd, ids)
        out.append((f"llama_ref {name} (relative)", reldiff(got, ref), 1e-5))
    return out


def invariants(fam: str, cfg: dict, sd: dict, ids) -> list:
    base = R.forward(cfg, sd, ids)
    out = [(f"{fam} incremental == full", maxdiff(base, R.forward_incremental(cfg, sd, ids)), 1e-9)]
    if fam == "mistral":
        c = dict(cfg, sliding_window=len(ids))
        out.append(("mistral window>=T == llama", maxdiff(R.forward(c, sd, ids), R.forward(as_llama(cfg), sd, ids)), 1e-9))
    if fam == "qwen2":
        s = {k: (torch.zeros_like(v) if k.endswith(".bias") else v) for k, v in sd.items()}
        s2 = {k: v for k, v in s.items() if not k.endswith(".bias")}
        out.append(("qwen2 zero bias == llama", maxdiff(R.forward(cfg, s, ids), R.forward(as_llama(cfg), s2, ids)), 1e-9))
    if fam == "qwen3":
        s = {k: (v * 7.0 if k.endswith(("q_proj.weight", "k_proj.weight")) else v) for k, v in sd.items()}
        out.append(("qwen3 q/k scaled x7 (q/k norm)", maxdiff(R.forward(cfg, s, ids), base), 1e-4))
    if fam == "phi3":
        nh, nkv, hd, I = cfg["num_attention_heads"], cfg["num_key_value_heads"], R.head_dim(cfg), cfg["intermediate_size"]
        s = {}
        for k, v in sd.items():
            if k.endswith("qkv_proj.weight"):
                q, kk, vv = v.split([nh * hd, nkv * hd, nkv * hd], dim=0)
                p = k[: -len("qkv_proj.weight")]
                s[p + "q_proj.weight"], s[p + "k_proj.weight"], s[p + "v_proj.weight"] = q, kk, vv
            elif k.endswith("gate_up_proj.weight"):
                p = k[: -len("gate_up_proj.weight")]
                s[p + "gate_proj.weight"], s[p + "up_proj.weight"] = v[:I], v[I:]
            else:
                s[k] = v
        c = dict(cfg, sliding_window=len(ids))
        out.append(("phi3 split fused == llama", maxdiff(R.forward(c, sd, ids), R.forward(as_llama(cfg), s, ids)), 1e-9))
    if fam == "gemma2":
        # gemma2 minus its extras is gemma: caps and windows off, scale 1/sqrt(head_dim), and the
        # post-attention / post-feedforward norms dropped (gemma's post_attention_layernorm is
        # gemma2's pre_feedforward_layernorm)
        c = dict(cfg, attn_logit_softcapping=None, final_logit_softcapping=None, sliding_window=None,
                 query_pre_attn_scalar=R.head_dim(cfg))
        g = {k: v for k, v in cfg.items() if k not in ("attn_logit_softcapping", "final_logit_softcapping",
                                                        "sliding_window", "query_pre_attn_scalar",
                                                        "cache_implementation")}
        g["model_type"] = "gemma"
        sg = {}
        for k, v in sd.items():
            if k.endswith(("post_attention_layernorm.weight", "post_feedforward_layernorm.weight")):
                continue
            sg[k.replace("pre_feedforward_layernorm", "post_attention_layernorm")] = v
        ident = torch.zeros(cfg["hidden_size"], dtype=torch.float64)  # marks a norm to skip
        s = {k: (ident if k.endswith(("post_attention_layernorm.weight", "post_feedforward_layernorm.weight"))
                 else v.double()) for k, v in sd.items()}
        saved = R._rms
        R._rms = lambda c_, x, w: x if w is ident else saved(c_, x, w)
        try:  # forward's .double() keeps float64 tensors as the same objects
            a = R.forward(c, s, ids)
        finally:
            R._rms = saved
        out.append(("gemma2 minus extras == gemma", maxdiff(a, R.forward(g, sg, ids)), 1e-9))
    return out


def feature_effects(fam: str, cfg: dict, sd: dict, ids) -> list:
    """(feature, relative logit change when the feature is turned off); first the change
    that float32 arithmetic alone makes, the noise floor an implementation sees."""
    base = R.forward(cfg, sd, ids)
    alt = []
    out = [("float32 arithmetic (noise floor)", reldiff(R.forward(cfg, sd, ids, torch.float32).double(), base))]
    if fam == "llama":
        alt.append(("rope_scaling llama3", dict(cfg, rope_scaling=None), sd))
    if fam in ("mistral", "gemma2"):
        alt.append(("sliding_window", dict(cfg, sliding_window=None), sd))
    if fam == "qwen2":
        alt.append(("q/k/v biases", cfg, {k: (v * 0 if k.endswith(".bias") else v) for k, v in sd.items()}))
    if fam == "qwen3":
        alt.append(("q_norm/k_norm weights", cfg, {k: (torch.ones_like(v) if k.endswith(("q_norm.weight", "k_norm.weight")) else v)
                                                  for k, v in sd.items()}))
    if fam == "phi3":
        # the fused order: [gate | up] swapped to [up | gate]
        I = cfg["intermediate_size"]
        alt.append(("gate_up order", cfg, {k: (torch.cat([v[I:], v[:I]]) if k.endswith("gate_up_proj.weight") else v)
                                           for k, v in sd.items()}))
    if fam in ("gemma", "gemma2"):
        key = "hidden_activation" if fam == "gemma2" else "hidden_act"
        alt.append(("tanh GELU (vs exact)", dict(cfg, **{key: "gelu", "hidden_activation": "gelu"}), sd))
        # a plain w * x norm on these weights equals (1 + w') * x with w' = w - 1
        alt.append(("(1+w) norms (vs w)", cfg, {k: (v - 1.0 if k.endswith("norm.weight") else v) for k, v in sd.items()}))
    if fam == "gemma":
        alt.append(("bf16 normalizer (vs f32 sqrt)", dict(cfg, torch_dtype="float32"), sd))
    if fam == "gemma2":
        alt.append(("attn_logit_softcapping", dict(cfg, attn_logit_softcapping=None), sd))
        alt.append(("final_logit_softcapping", dict(cfg, final_logit_softcapping=None), sd))
        alt.append(("query_pre_attn_scalar (vs head_dim)", dict(cfg, query_pre_attn_scalar=R.head_dim(cfg)), sd))
    for name, c, s in alt:
        out.append((name, reldiff(R.forward(c, s, ids), base)))
    return out


# ------------------------------------------------------------------- write --

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    fix = os.path.join(ROOT, "tests", "fixtures")
    out = args[0] if args else os.path.join(fix, "families")
    torch.set_num_threads(1)
    tok = M.tokenizer()
    ids_text = tok.encode(M.TEXT)
    assert len(ids_text) >= 200 + T

    results = check_llama_ref(fix)
    effects = []
    fixtures = {}
    for k, fam in enumerate(R.FAMILIES):
        cfg = CONFIGS[fam]
        sd = random_weights(cfg, SEEDS[fam])
        ids = ids_text[20 * k: 20 * k + T]
        results += invariants(fam, cfg, sd, ids)
        effects += [(fam, n, d) for n, d in feature_effects(fam, cfg, sd, ids)]
        fixtures[fam] = (cfg, sd, ids, R.forward(cfg, sd, ids))

    bad = [r for r in results if not r[1] < r[2]]
    noise = {f: d for f, n, d in effects if n.startswith("float32")}
    bad += [("effect " + f + " " + n, d, 30 * noise[f]) for f, n, d in effects
            if not n.startswith("float32") and not d > 30 * noise[f]]
    for name, d, tol in results:
        print(f"check  {name:40s} {d:.3e}  (< {tol:g})")
    for fam, name, d in effects:
        print(f"effect {fam:8s} {name:38s} rel {d:.2e}")
    if bad:
        print("REFUSING TO WRITE; failed:", bad, file=sys.stderr)
        sys.exit(1)

    os.makedirs(out, exist_ok=True)
    tensors = {}
    for fam, (cfg, sd, ids, logits) in fixtures.items():
        d = os.path.join(out, fam)
        os.makedirs(d, exist_ok=True)
        M.write_json(os.path.join(d, "config.json"), dict(sorted({**_COMMON, **cfg}.items())))
        M.write_json(os.path.join(d, "tokenizer.json"), tok.to_hf_json())
        dt = R._DTYPES[cfg["torch_dtype"]]
        L.save_safetensors({n: v.to(dt) for n, v in sd.items()}, os.path.join(d, "model.safetensors"),
                           {"format": "pt"})
        tensors[f"{fam}.ids"] = torch.tensor(ids, dtype=torch.int32)
        tensors[f"{fam}.logits"] = logits.float()
        print(f"{fam:8s} T={len(ids)} V={logits.shape[1]} max|logit| {logits.abs().max():.3f} "
              f"std {logits.std():.3f}")
    L.save_safetensors(tensors, os.path.join(out, "logits.safetensors"),
                       {"format": "pt", "families": ",".join(R.FAMILIES), "T": str(T),
                        "generator": "tools/make_family_fixtures.py"})


if __name__ == "__main__":
    main()
