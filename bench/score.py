"""bench score: token-budget batching against naive fixed-size padded batches, same samples, same model.

    python build.py bench score [--samples 3000] [--budget 0] [--fixed 16] [--max-length 1024] [--device cpu|cuda]
                                [--layers 6 --width 256 --heads 8]

A ~5M-parameter GPT-2 style model by default (random weights: speed does not depend on them) with a byte-level BPE
tokenizer fitted on the samples, which are the real conversations of data/samples/ (cycled if needed).
Three runs score every sample (loss_cond and loss_uncond: two sequences each) and their losses must agree:
the naive baseline (fixed batches in input order, full logits over the vocabulary at every position, an
attention mask), the same forward pass with sorted token-budget batches (batching alone), and the scorer
as it runs (token-budget batches and the lean forward: no attention mask under right padding, the output
head and the loss only at the scored positions). Printed: tokens/s (real tokens, pads not counted), the
share of computed positions that were padding, and the ratios. On a GPU (bf16, SDPA) it also prints the
model-FLOPs utilization against --peak-tflops.

The samples go through in chunks of --chunk (the scorer sorts within a chunk, as it does within one Arrow
batch of a partition), and every chunk is scored by all three in turn, in an order that rotates, so a
slow minute of a shared machine falls on all three rather than on one. Budget and max length default to
what the scorer uses (platform.scoring.token_budget 0: 2048 on a CPU; scoring.max_length 1024).
Goal: >= 2.5x on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


def conversations(n: int) -> list[tuple[str, str]]:
    from instructlake.scoring.scorer import render_turns

    out = []
    for f in sorted((ROOT / "data" / "samples").glob("*.json")):
        try:
            rows = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            continue
        for r in rows:
            if "instruction" in r and r.get("output"):
                out.append((render_turns([("user", r["instruction"] + ("\n" + r["input"] if r.get("input") else ""))])
                            + "Assistant:", " " + r["output"]))
            elif isinstance(r.get("conversations"), list) and len(r["conversations"]) >= 2:
                turns = [("user" if t.get("from") == "human" else "assistant", t.get("value", ""))
                         for t in r["conversations"]]
                out.append((render_turns(turns[:-1]) + "Assistant:", " " + turns[-1][1]))
    return [out[i % len(out)] for i in range(n)]


def main() -> int:
    from instructlake.config import ScoringConfig, ScoringSettings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--budget", type=int, default=ScoringSettings().token_budget,
                    help="token budget per forward pass (0: the scorer's default for the device)")
    ap.add_argument("--fixed", type=int, default=16, help="rows per batch of the naive baseline")
    ap.add_argument("--max-length", type=int, default=ScoringConfig().max_length)
    ap.add_argument("--chunk", type=int, default=1000, help="samples per chunk (each scored by all three in "
                                                            "turn)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", type=int, default=6, help="the bench model's layers (a GPU wants a bigger "
                                                          "model)")
    ap.add_argument("--width", type=int, default=256, help="the bench model's hidden width")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100/H200: "
                                                                     "989)")
    a = ap.parse_args()

    import torch

    from instructlake.scoring.reference import ReferenceSpec, build_gpt, train_tokenizer
    from instructlake.scoring.scorer import ScoreInput, TransformersScorer

    convs = conversations(a.samples)
    items = [ScoreInput(c, r) for c, r in convs]
    spec = ReferenceSpec(n_layer=a.layers, n_embd=a.width, n_head=a.heads, n_positions=a.max_length)
    tok = train_tokenizer([c + r for c, r in convs[:2000]], 4096)
    model = build_gpt(len(tok), spec)
    n_params = sum(p.numel() for p in model.parameters())
    d = Path(tempfile.mkdtemp(prefix="bench-score-"))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    kinds = {"naive": {"fixed_batch": a.fixed, "lean": False}, "batching": {"token_budget": a.budget, "lean": False},
             "scorer": {"token_budget": a.budget, "lean": True}}
    scorers = {k: TransformersScorer("bench", str(d), max_length=a.max_length, device=a.device, **kw)
               for k, kw in kinds.items()}
    budget = scorers["scorer"].token_budget
    names = {"naive": f"naive: fixed batches of {a.fixed}", "batching": f"sorted, budget {budget}, full head",
             "scorer": f"sorted, budget {budget}, lean"}
    print(f"{len(items):,} samples, {n_params / 1e6:.1f}M-parameter GPT, max_length {a.max_length}, device "
          f"{a.device}, {torch.get_num_threads()} threads, chunks of {a.chunk}", flush=True)
    for sc in scorers.values():
        sc.score(items[:64])  # warm-up
        sc.tokens_scored = sc.tokens_padded = 0
    secs = dict.fromkeys(kinds, 0.0)
    scores: dict[str, list] = {k: [] for k in kinds}
    order = list(kinds)
    for n, start in enumerate(range(0, len(items), a.chunk)):
        chunk = items[start:start + a.chunk]
        for k in order[n % 3:] + order[:n % 3]:
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.time()
            scores[k] += scorers[k].score(chunk)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            secs[k] += time.time() - t
        print(f"  {start + len(chunk):,} samples: " + ", ".join(f"{k} {secs[k]:.1f}s" for k in kinds), flush=True)
    results = {names[k]: (secs[k], scorers[k].tokens_scored, scorers[k].tokens_padded, scores[k]) for k in kinds}
    (b_s, b_tok, b_pad, b_sc), (m_s, m_tok, _, m_sc), (t_s, t_tok, t_pad, t_sc) = results.values()
    worst = max(abs(x.loss_cond - y.loss_cond) for other in (m_sc, t_sc) for x, y in zip(b_sc, other, strict=True)
                if x.loss_cond is not None)
    print(f"\n{'':36}{'seconds':>9}{'tokens/s':>11}{'padding':>9}")
    for name, (sec, tok_n, pad_n, _) in results.items():
        print(f"{name:36}{sec:>9.1f}{tok_n / sec:>11,.0f}{1 - tok_n / pad_n:>9.0%}")
    base = b_tok / b_s
    print(f"\nbatching alone (sorted + token budget, same forward as the baseline): "
          f"{(m_tok / m_s) / base:.2f}x")
    print(f"the scorer as it runs (sorted + token budget + lean forward) against the naive baseline: "
          f"{(t_tok / t_s) / base:.2f}x tokens/s; goal >= 2.5x on CPU")
    print("  (lean: no attention mask under right padding, output head and loss only at the scored positions)")
    print(f"largest loss_cond difference from the baseline: {worst:.2e}")
    if a.device.startswith("cuda"):
        # forward FLOPs ~ 2 x parameters per computed position (pads included: the GPU computes them)
        mfu = 2 * n_params * t_pad / t_s / (a.peak_tflops * 1e12)
        print(f"model-FLOPs utilization (token budget, forward only, padding counted): {mfu:.1%} of "
              f"{a.peak_tflops:g} TFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
