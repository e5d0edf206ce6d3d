#!/usr/bin/python3
"""Golden fixtures for the C Llama forward pass (tests/test_model.c, tests/cli_perplexity.sh).

Writes, under tests/fixtures/ (or the directory given as argv[1]):
  tiny_gqa/    random-init Llama with odd dims: hidden 72, 3 heads x 24, ONE kv head
               (GQA 3:1), intermediate 100, 2 layers, untied lm_head, F32 weights,
               vocab 300 = a byte-level BPE tokenizer trained here on the text below.
  tiny_tied/   hidden 64, 4 heads x head_dim 24 (q dim 96 != hidden: explicit head_dim),
               2 kv heads, 3 layers, tie_word_embeddings, BF16 weights, sharded into two
               files + model.safetensors.index.json, rope_scaling llama3 (original ctx 32,
               so the scaling changes most frequencies), config vocab 304 > tokenizer 300
               (padded vocabulary).
  model_logits.safetensors
               <model>.seq<k>.ids     I32 [T]     token ids (positions 0..T-1)
               <model>.seq<k>.logits  F32 [T, V]  full-sequence logits of the reference
               computed by tools/llama_ref.py in float64 from the stored weights (BF16 weights
               are rounded first, so the reference sees exactly what the C code reads).
               With --default, also "default.seq0/1" for models/default (F16 weights).
  model_text.txt  ~3 KB of English for the CLI perplexity test.
  model_ppl.json  reference perplexity of tiny_gqa on model_text.txt at ctx 32 and 64.

Deterministic (fixed seeds). Run: /usr/bin/python3 tools/make_model_fixtures.py [outdir] [--default]
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bpe_tokenizer as B  # noqa: E402
import llama_ref as L      # noqa: E402

TEXT = """The old lighthouse stood at the end of the rocky point, and for forty years its keeper had climbed
the narrow stairs every evening to light the great lamp. Ships passing in the night saw the beam sweep
across the water and knew that the reef was near. In winter the wind howled around the tower and the
waves threw spray as high as the gallery, but the light never failed.
One autumn a young clerk arrived from the city with a letter. The lamp was to be replaced by an
electric one that would turn itself on at dusk and off at dawn; the keeper could retire to a cottage
in the village, with a small pension and a garden. He read the letter twice, folded it carefully, and
put it in the drawer of his desk beside the logbooks.
"Will you miss it?" the clerk asked. The keeper looked out at the grey sea for a long time before he
answered. "A lighthouse is not a lamp," he said at last. "It is a promise that somebody is awake."
The clerk did not understand, and wrote in his report that the keeper had accepted the change.
That winter the new light was installed. It was brighter than the old one, and it never needed oil,
and it turned faithfully on and off. But on the night of the great storm in February the power line
from the mainland came down, and the tower stood dark. The old keeper, who could not sleep, saw the
darkness from his cottage window. He took his coat and his lantern and walked the three miles along the
cliff path in the rain, and climbed the stairs, and lit the old lamp that nobody had thought to remove.
In the morning a fishing boat came into the harbour with six men aboard who had seen the beam at midnight
and turned away from the reef just in time. Nobody ever wrote a report about that night, but the lamp
was never removed again, and the keeper, when he died many years later, was buried on the point, where
the light passes over his grave every few seconds, all night long, as it has done for a hundred years.
Numbers appear too: 1, 22, 333, 4444 and 3.14159; punctuation (like this!) and quotes "here".
"""


def tokenizer():
    return B.train_bpe([TEXT], vocab_size=300)


def random_model(cfg, seed):
    torch.manual_seed(seed)
    m = L.LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "q_proj" in name or "k_proj" in name:
                p.mul_(3.0)  # sharper attention so positions and the mask matter
    m.eval()
    return m


def round_weights(m, dtype):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def write_json(path, obj):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def save_model(m, tok, outdir, dtype, shards=1):
    os.makedirs(outdir, exist_ok=True)
    for f in os.listdir(outdir):
        os.remove(os.path.join(outdir, f))
    write_json(os.path.join(outdir, "config.json"), m.config_dict)
    write_json(os.path.join(outdir, "tokenizer.json"), tok.to_hf_json())
    sd = {k: v.to(dtype) for k, v in m.hf_state_dict().items()}
    if shards == 1:
        L.save_safetensors(sd, os.path.join(outdir, "model.safetensors"), {"format": "pt"})
        return
    names = sorted(sd)
    per = (len(names) + shards - 1) // shards
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: sd[n] for n in names[s * per:(s + 1) * per]}
        L.save_safetensors(part, os.path.join(outdir, fname), {"format": "pt"})
        weight_map.update({n: fname for n in part})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    write_json(os.path.join(outdir, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map})


@torch.no_grad()
def ref_logits(m, ids):
    m64 = L.LlamaForCausalLM(m.config)
    m64.load_state_dict(m.state_dict())
    m64.double().eval()
    return m64(torch.tensor([ids], dtype=torch.long))[0].float()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = args[0] if args else os.path.join(ROOT, "tests", "fixtures")
    torch.set_num_threads(1)
    tok = tokenizer()
    assert tok.vocab_size == 300, tok.vocab_size
    ids_text = tok.encode(TEXT)
    with open(os.path.join(out, "model_text.txt"), "w", encoding="utf-8") as f:
        f.write(TEXT)

    tensors = {}
    meta = {"format": "pt", "models": ""}

    # ---- tiny_gqa: F32, untied, GQA 3:1, odd dims
    cfg = L.LlamaConfig(vocab_size=300, hidden_size=72, intermediate_size=100, num_hidden_layers=2,
                        num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=256,
                        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                        bos_token_id=0, eos_token_id=0)
    m = random_model(cfg, 1)
    m.config_dict = cfg.to_hf_dict("float32")
    save_model(m, tok, os.path.join(out, "tiny_gqa"), torch.float32)
    g = torch.Generator().manual_seed(7)
    seqs = [ids_text[:37], torch.randint(0, 300, (200,), generator=g).tolist()]
    for k, ids in enumerate(seqs):
        tensors[f"tiny_gqa.seq{k}.ids"] = torch.tensor(ids, dtype=torch.int32)
        tensors[f"tiny_gqa.seq{k}.logits"] = ref_logits(m, ids)

    # ---- tiny_tied: BF16, tied, explicit head_dim, llama3 rope scaling, 2 shards, padded vocab
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32}
    cfg2 = L.LlamaConfig(vocab_size=304, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=128,
                         rms_norm_eps=1e-6, rope_theta=50000.0, tie_word_embeddings=True, bos_token_id=0,
                         eos_token_id=0, rope_scaling=rs)
    m2 = random_model(cfg2, 2)
    round_weights(m2, torch.bfloat16)
    m2.config_dict = cfg2.to_hf_dict("bfloat16")
    save_model(m2, tok, os.path.join(out, "tiny_tied"), torch.bfloat16, shards=2)
    seqs2 = [ids_text[50:110], torch.randint(0, 304, (128,), generator=g).tolist()]
    for k, ids in enumerate(seqs2):
        tensors[f"tiny_tied.seq{k}.ids"] = torch.tensor(ids, dtype=torch.int32)
        tensors[f"tiny_tied.seq{k}.logits"] = ref_logits(m2, ids)
    models = ["tiny_gqa", "tiny_tied"]

    # ---- perplexity of tiny_gqa on model_text.txt by the reference protocol (CLI check)
    ppl = {}
    for seqlen in (32, 64):
        m64 = L.LlamaForCausalLM(cfg)
        m64.load_state_dict(m.state_dict())
        m64.double().eval()
        r = L.perplexity(m64, ids_text, seqlen)
        ppl[f"ctx{seqlen}"] = {"ppl": r["ppl"], "tokens_scored": r["tokens_scored"], "windows": r["windows"]}
    write_json(os.path.join(out, "model_ppl.json"), {"model": "tiny_gqa", "text": "model_text.txt",
                                                     "protocol": "spqr (tools/llama_ref.py perplexity)", **ppl})

    # ---- the trained default model (F16), if present
    ddir = os.path.join(ROOT, "models", "default")
    if "--default" in sys.argv:
        md = L.load_hf_dir(ddir)  # F16 weights widened to fp32 exactly
        dtok = B.BPETokenizer.load(os.path.join(ddir, "tokenizer.json"))
        with open(os.path.join(ROOT, "data", "heldout.txt"), encoding="utf-8") as f:
            held = dtok.encode(f.read(20000))
        T = min(256, md.config.max_position_embeddings)
        for k, ids in enumerate([held[:48], held[1000:1000 + T]]):
            tensors[f"default.seq{k}.ids"] = torch.tensor(ids, dtype=torch.int32)
            tensors[f"default.seq{k}.logits"] = ref_logits(md, ids)
        models.append("default")

    meta["models"] = ",".join(models)
    meta["seqs_per_model"] = "2"
    L.save_safetensors(tensors, os.path.join(out, "model_logits.safetensors"), meta)
    for k, v in sorted(tensors.items()):
        if k.endswith("logits"):
            print(f"{k}: {tuple(v.shape)} max|logit| {v.abs().max():.3f}")


if __name__ == "__main__":
    main()
