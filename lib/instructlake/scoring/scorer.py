"""The Scorer protocol and its torch/transformers backend: how well a base model predicts each response.

Per sample: loss_cond, the mean token loss of the response given the conversation before it, and
loss_uncond, the mean token loss of the response alone. IFD = loss_cond / loss_uncond (instruction-following
difficulty) and loss reduction = loss_uncond - loss_cond.

A sequence longer than max_length keeps the end of its context (at least half the room when the
context is that long) and the start of its response; the row records that it was truncated.

Batching is by a token budget, not a row count: all sequences (two per sample) are sorted by length and
packed greedily so that longest-in-batch x rows stays under `token_budget`, which keeps padding small.
Padding is on the right, so a causal model's prediction for a real token never sees a pad; per-sequence
losses therefore do not depend on how sequences were batched (tested to 1e-4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ScoreInput:
    context: str  # the conversation before the scored response, rendered as text ("" for none)
    response: str


@dataclass
class Score:
    loss_cond: float | None
    loss_uncond: float | None
    n_tokens: int  # response tokens scored (after truncation)
    truncated: bool
    error: str | None = None
    response_bytes: int = 0  # UTF-8 bytes of the scored response tokens

    @property
    def loss_cond_per_byte(self) -> float | None:
        """Total response loss over its bytes: comparable across tokenizers and scripts, where a mean per
        token is not (a byte-level tokenizer splits unfamiliar text into many easy tokens)."""
        if self.loss_cond is None or self.response_bytes <= 0:
            return None
        return self.loss_cond * self.n_tokens / self.response_bytes

    @property
    def ifd(self) -> float | None:
        if self.loss_cond is None or not self.loss_uncond:
            return None
        return self.loss_cond / self.loss_uncond

    @property
    def loss_reduction(self) -> float | None:
        if self.loss_cond is None or self.loss_uncond is None:
            return None
        return self.loss_uncond - self.loss_cond


@runtime_checkable
class Scorer(Protocol):
    model: str

    def score(self, items: Sequence[ScoreInput]) -> list[Score]: ...


def render_turns(turns: Sequence[tuple[str, str]]) -> str:
    """Turns as the plain text a base model is scored on: "User: ...\\n\\nAssistant: ..." (no chat template:
    base models have none, and the same rendering keeps scores comparable across models)."""
    return "".join(f"{'User' if r == 'user' else 'Assistant' if r == 'assistant' else r.capitalize()}: {c}\n\n"
                   for r, c in turns)


def pack(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped into batches: sorted by length, each batch's max length x size <= token_budget
    (a sequence longer than the budget gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and lengths[i] * (len(cur) + 1) > token_budget:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class TransformersScorer:
    def __init__(self, model: str, path: str | None = None, max_length: int = 1024, token_budget: int = 8192,
                 device: str = "auto", dtype: str = "auto", fixed_batch: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        path = path or model
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        on_gpu = self.device.startswith("cuda")
        torch_dtype = (torch.bfloat16 if on_gpu else torch.float32) if dtype == "auto" else getattr(torch, dtype)
        kwargs = {"dtype": torch_dtype}
        if on_gpu:
            kwargs["attn_implementation"] = "sdpa"
        self.lm = AutoModelForCausalLM.from_pretrained(path, **kwargs).to(self.device).eval()
        limit = getattr(self.lm.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, limit)
        self.token_budget = max(token_budget, self.max_length)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        # fixed_batch > 0: consecutive groups of that many sequences, unsorted (the naive baseline of bench score)
        self.fixed_batch = fixed_batch
        self.tokens_scored = 0  # real (non-pad) tokens through the model, for throughput figures
        self.tokens_padded = 0

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def sequences(self, item: ScoreInput) -> tuple[list[int], int, list[int], int, bool]:
        """(cond ids, where the response starts in them, uncond ids, where it starts, truncated)."""
        ctx, resp = self._encode(item.context), self._encode(item.response)
        room = self.max_length - len(self.bos)
        truncated = False
        if len(ctx) + len(resp) > room:
            # the context keeps its end, at least half the room when it is that long (a loss given no
            # instruction would say nothing); the response keeps its start in what is left
            truncated = True
            keep = max(room - len(resp), min(len(ctx), room // 2))
            ctx = ctx[len(ctx) - keep:] if keep else []
            resp = resp[:room - len(ctx)]
        cond = self.bos + ctx + resp
        uncond = self.bos + resp
        return cond, len(self.bos) + len(ctx), uncond, len(self.bos), truncated

    def _losses(self, seqs: list[list[int]], starts: list[int]) -> list[float | None]:
        """Mean loss over positions >= start of each sequence, batched by the token budget."""
        import torch

        out: list[float | None] = [None] * len(seqs)
        if self.fixed_batch > 0:
            batches = [list(range(i, min(i + self.fixed_batch, len(seqs)))) for i in range(0, len(seqs), self.fixed_batch)]
        else:
            batches = pack([len(s) for s in seqs], self.token_budget)
        for batch in batches:
            width = max(len(seqs[i]) for i in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, i in enumerate(batch):
                s = seqs[i]
                ids[row, :len(s)] = torch.tensor(s)
                mask[row, :len(s)] = 1
                labels[row, starts[i]:len(s)] = torch.tensor(s[starts[i]:])
            self.tokens_scored += int(mask.sum())
            self.tokens_padded += len(batch) * width
            with torch.no_grad():
                logits = self.lm(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(self.device)
            tok = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                                    shift_labels.reshape(-1), ignore_index=-100, reduction="none")
            tok = tok.view(shift_labels.shape)
            valid = shift_labels != -100
            sums, counts = (tok * valid).sum(1), valid.sum(1)
            for row, i in enumerate(batch):
                c = int(counts[row])
                out[i] = float(sums[row]) / c if c else None
        return out

    def score(self, items: Sequence[ScoreInput]) -> list[Score]:
        seqs, starts, meta = [], [], []
        for it in items:
            cond, cs, uncond, us, trunc = self.sequences(it)
            n_resp = len(cond) - cs
            n_bytes = len(self.tokenizer.decode(cond[cs:]).encode("utf-8")) if n_resp else 0
            meta.append((n_resp, trunc, n_bytes))
            seqs += [cond, uncond]
            # a response's first token is predicted from the position before it: label positions start there
            starts += [max(cs, 1), max(us, 1)]
        losses = self._losses(seqs, starts) if seqs else []
        out = []
        for k, (n_resp, trunc, n_bytes) in enumerate(meta):
            lc, lu = losses[2 * k], losses[2 * k + 1]
            err = None if n_resp > 0 else "empty response"
            bad = lc is None or lu is None or not (math.isfinite(lc) and math.isfinite(lu))
            out.append(Score(None if bad else lc, None if bad else lu, n_resp, trunc, err or ("no loss" if bad else None),
                             n_bytes))
        return out
