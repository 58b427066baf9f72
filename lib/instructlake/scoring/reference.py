"""A reference causal LM trained on the pool itself, so scoring works with no model hub.

`train_reference` fits a byte-level BPE tokenizer (`tokenizers`) on the pool's text and trains a small GPT-2
style model on it for a bounded wall-clock time on the CPU (or GPU), then saves both in Hugging Face format,
loadable by the scorer like any model directory. Its losses are real: text like the pool scores low,
off-distribution text (shuffled characters, another script) scores high, which is what the undertrained
criterion looks for. On a cluster, score with the target base model instead (scoring.model).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSpec:
    vocab_size: int = 4096
    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 4
    n_positions: int = 256
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    seconds: float = 180.0
    seed: int = 0


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A byte-level BPE tokenizer fitted on the texts, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")


def build_gpt(vocab_size: int, spec: ReferenceSpec):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(spec.seed)
    # gelu_pytorch_tanh: GPT-2's tanh-approximated GELU as one fused PyTorch kernel; "gelu_new", the
    # default, computes the same function (to 3e-7) in five tensor operations, a fifth of a CPU forward pass
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=spec.n_positions, n_embd=spec.n_embd, n_layer=spec.n_layer,
                     n_head=spec.n_head, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                     activation_function="gelu_pytorch_tanh")
    return GPT2LMHeadModel(cfg)


def train_reference(texts: Sequence[str], out_dir: str | Path, spec: ReferenceSpec = ReferenceSpec(),
                    device: str = "auto") -> dict:
    """Train and save; returns figures (parameters, steps, tokens seen, first and last loss)."""
    import torch

    rng = random.Random(spec.seed)
    t0 = time.time()
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for t in texts:
        ids += [eos] + tokenizer(t, add_special_tokens=False)["input_ids"]
    data = torch.tensor(ids, dtype=torch.long)
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model = build_gpt(len(tokenizer), spec).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("reference model: %.1fM parameters, %d training tokens, tokenizer %d tokens (%.1fs); training "
             "for %.0fs on %s", n_params / 1e6, len(ids), len(tokenizer), time.time() - t0, spec.seconds, dev)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    model.train()
    step, seen, first, last, t_train = 0, 0, None, None, time.time()
    span = spec.seq_len + 1
    while time.time() - t_train < spec.seconds and len(data) > span:
        starts = [rng.randrange(0, len(data) - span) for _ in range(spec.batch_size)]
        batch = torch.stack([data[s:s + span] for s in starts]).to(dev)
        # warm-up then cosine decay over the time budget
        frac = (time.time() - t_train) / spec.seconds
        lr = spec.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        for g in opt.param_groups:
            g["lr"] = lr
        inp = batch[:, :-1]
        loss = model(input_ids=inp, attention_mask=torch.ones_like(inp), labels=inp).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += batch.numel()
        last = float(loss.detach())
        first = last if first is None else first
        if step % 100 == 0:
            log.info("reference model: step %d, loss %.3f, %.0f tokens/s", step, last, seen / (time.time() - t_train))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"parameters": n_params, "steps": step, "tokens_seen": seen, "first_loss": first, "last_loss": last,
            "train_tokens": len(ids), "seconds": round(time.time() - t0, 1), "path": str(out)}
    log.info("reference model saved to %s: %s", out, info)
    return info


REFERENCE = "reference"


def reference_dir(warehouse: str) -> str:
    """Where train-reference saves the model: <warehouse>/models/reference, local or remote."""
    return f"{warehouse.rstrip('/')}/models/{REFERENCE}"


def pool_texts(store, max_chars: int = 30_000_000, seed: int = 0) -> list[str]:
    """The kept samples' conversations rendered as the scorer renders them, up to max_chars (a seeded
    sample when the pool is larger)."""
    from pyspark.sql import functions as F

    from instructlake.pool import without_removed
    from instructlake.scoring.scorer import render_turns

    samples = without_removed(store, store.read("samples"))
    total = samples.agg(F.sum("chars")).first()[0] or 0
    if total > max_chars:
        samples = samples.sample(fraction=max_chars / total, seed=seed)
    rows = samples.select("conversation").orderBy(F.xxhash64("sample_id")).collect()
    return [render_turns([(t["role"], t["content"]) for t in r["conversation"]]) for r in rows]
