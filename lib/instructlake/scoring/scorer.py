"""The Scorer protocol and its torch/transformers backend: how well a base model predicts each response.

Per sample: loss_cond, the mean token loss of the response given the conversation before it, and
loss_uncond, the mean token loss of the response alone. IFD = loss_cond / loss_uncond (instruction-following
difficulty) and loss reduction = loss_uncond - loss_cond. With turns "all" every assistant turn is scored:
loss_cond over all assistant tokens of the whole conversation, loss_uncond over the same tokens with the
user turns left out.

A sequence longer than max_length keeps the end of the context before the first scored response (at least
half the room when that context is that long) and then its start; the row records that it was truncated.

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
    # Turns "all": the rest of the conversation after `response` as (text, scored) pieces.
    more: tuple[tuple[str, bool], ...] = ()

    @classmethod
    def from_turns(cls, turns: Sequence[tuple[str, str]], which: str = "last") -> ScoreInput:
        """The rendering of render_turns, cut into pieces: the last assistant turn (which="last") or every
        assistant turn (which="all") is scored. No assistant turn: an empty response (scored as an error)."""
        assistants = [i for i, (r, _) in enumerate(turns) if r == "assistant"]
        if not assistants:
            return cls(render_turns(turns) + "Assistant:", "")
        first = assistants[-1] if which == "last" else assistants[0]
        more: list[tuple[str, bool]] = []
        for i in assistants[1:] if which == "all" else []:
            prev = max(j for j in assistants if j < i)
            between = "\n\n" + render_turns(turns[prev + 1:i]) + "Assistant:"
            more += [(between, False), (" " + turns[i][1], True)]
        return cls(render_turns(turns[:first]) + "Assistant:", " " + turns[first][1], tuple(more))


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
    names = {"user": "User", "assistant": "Assistant"}
    return "".join(f"{names.get(r) or r.capitalize()}: {c}\n\n" for r, c in turns)


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


# Tokens per pass when platform.scoring.token_budget is 0. On a CPU a pass of 2048 tokens keeps its
# activations (the MLP's 4x-wide one is 8 MB at width 1024) in cache; 8192 spills them and ran at 0.77x the
# tokens/s on the bench model. On an H200 (bench score, a 310M GPT in bf16) 4096 / 16384 / 65536 tokens
# per pass ran at 52k / 150k / 206k tokens/s: launches and Python dominate small passes. The full-head
# path (a model the lean forward cannot take) holds every position's logits, so it keeps the smaller one.
CPU_TOKEN_BUDGET = 2048
GPU_TOKEN_BUDGET = 65536
GPU_FULL_HEAD_BUDGET = 16384
HEAD_ROWS = 4096  # scored positions through the output head at a time (float32 logits: 2.5 GB at 152k tokens)


class TransformersScorer:
    def __init__(self, model: str, path: str | None = None, max_length: int = 1024, token_budget: int = 0,
                 device: str = "auto", dtype: str = "auto", fixed_batch: int = 0, lean: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        path = path or model
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        on_gpu = self.device.startswith("cuda")
        by_device = torch.bfloat16 if on_gpu else torch.float32
        torch_dtype = by_device if dtype == "auto" else getattr(torch, dtype)
        kwargs = {"dtype": torch_dtype}
        if on_gpu:
            kwargs["attn_implementation"] = "sdpa"
        self.lm = AutoModelForCausalLM.from_pretrained(path, **kwargs).to(self.device).eval()
        limit = getattr(self.lm.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, limit)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        # fixed_batch > 0: consecutive groups of that many sequences, unsorted (bench score's naive baseline)
        self.fixed_batch = fixed_batch
        # lean: hidden states from the base model without masking the pads (right padding: a causal model's
        # real tokens never see a pad, so the mask changes nothing they compute, and an all-ones mask lets
        # attention take its causal fast path), then the output head and the loss only at the scored
        # positions, not over the vocabulary at every position (for a 152k-token vocabulary that tensor is
        # most of the memory)
        self.lean = lean and self._lean_ok()
        gpu_budget = GPU_TOKEN_BUDGET if self.lean else GPU_FULL_HEAD_BUDGET
        self.token_budget = token_budget or (gpu_budget if on_gpu else CPU_TOKEN_BUDGET)
        self.tokens_scored = 0  # real (non-pad) tokens through the model, for throughput figures
        self.tokens_padded = 0

    def _lean_ok(self) -> bool:
        """The model is a base model plus a plain linear head (no logit scaling or soft-capping after it)."""
        cfg = self.lm.config
        scaled = getattr(cfg, "logit_scale", None) not in (None, 1, 1.0)
        if getattr(cfg, "final_logit_softcapping", None) or scaled:
            return False
        head = self.lm.get_output_embeddings()
        base = getattr(self.lm, "base_model", None)
        return head is not None and base is not None and base is not self.lm

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _encode_many(self, texts: list[str]) -> list[list[int]]:
        """All texts in one call: the fast tokenizer encodes a list in parallel, and one text at a time was a
        third of a GPU run's time (bench score)."""
        nonempty = [t for t in texts if t]
        ids = iter(self.tokenizer(nonempty, add_special_tokens=False)["input_ids"] if nonempty else [])
        return [next(ids) if t else [] for t in texts]

    @staticmethod
    def _texts(item: ScoreInput) -> list[str]:
        return [item.context, item.response, *(t for t, _ in item.more)]

    def sequences(self, item: ScoreInput, encoded: list[list[int]] | None = None
                  ) -> tuple[list[int], list[bool], list[int], list[bool], bool]:
        """(cond ids, which of them are scored, uncond ids, which are scored, truncated). The uncond sequence
        is the scored tokens that survived truncation, alone. `encoded`: the ids of _texts(item), if known."""
        ctx, *pieces = encoded if encoded is not None else [self._encode(t) for t in self._texts(item)]
        rest: list[int] = []
        scored: list[bool] = []
        for ids, is_scored in zip(pieces, (True, *(sc for _, sc in item.more)), strict=True):
            rest += ids
            scored += [is_scored] * len(ids)
        room = self.max_length - len(self.bos)
        truncated = len(ctx) + len(rest) > room
        if truncated:
            # the context keeps its end, at least half the room when it is that long (a loss given no
            # instruction would say nothing); what follows keeps its start in what is left
            keep = max(room - len(rest), min(len(ctx), room // 2))
            ctx = ctx[len(ctx) - keep:] if keep else []
            rest, scored = rest[:room - len(ctx)], scored[:room - len(ctx)]
        cond = self.bos + ctx + rest
        cond_mask = [False] * (len(self.bos) + len(ctx)) + scored
        resp = [t for t, m in zip(rest, scored, strict=True) if m]
        return cond, cond_mask, self.bos + resp, [False] * len(self.bos) + [True] * len(resp), truncated

    def _losses(self, seqs: list[list[int]], masks: list[list[bool]]) -> list[float | None]:
        """Mean loss over the masked positions of each sequence (the first position has no prediction),
        batched by the token budget."""
        import numpy as np
        import torch

        out: list[float | None] = [None] * len(seqs)
        if self.fixed_batch > 0:
            step = self.fixed_batch
            batches = [list(range(i, min(i + step, len(seqs)))) for i in range(0, len(seqs), step)]
        else:
            batches = pack([len(s) for s in seqs], self.token_budget)
        for batch in batches:
            # the batch's tensors filled in one vectorized scatter, not a Python loop per row
            lens = np.fromiter((len(seqs[i]) for i in batch), np.int64, len(batch))
            width = int(lens.max())
            flat = np.fromiter((t for i in batch for t in seqs[i]), np.int64, int(lens.sum()))
            scored = np.fromiter((m for i in batch for m in masks[i]), bool, int(lens.sum()))
            rows = np.repeat(np.arange(len(batch)), lens)
            cols = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
            ids_np = np.full((len(batch), width), self.pad_id, np.int64)
            mask_np = np.zeros((len(batch), width), np.int64)
            labels_np = np.full((len(batch), width), -100, np.int64)
            ids_np[rows, cols] = flat
            mask_np[rows, cols] = 1
            labels_np[rows, cols] = np.where(scored, flat, -100)
            ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
            labels = torch.from_numpy(labels_np)
            self.tokens_scored += int(mask.sum())
            self.tokens_padded += len(batch) * width
            shift_labels = labels[:, 1:].to(self.device)
            valid = shift_labels != -100
            with torch.inference_mode():
                if self.lean:
                    # an all-ones mask: what no mask means under right padding, and it says so to transformers
                    dev_ids = ids.to(self.device)
                    hidden = self.lm.base_model(input_ids=dev_ids, attention_mask=torch.ones_like(dev_ids),
                                                use_cache=False).last_hidden_state[:, :-1]
                    tok = self._head_loss(hidden[valid], shift_labels[valid])
                    rows_of = valid.nonzero()[:, 0]
                    sums = torch.zeros(len(batch), dtype=tok.dtype, device=tok.device)
                    sums.index_add_(0, rows_of, tok)
                else:
                    logits = self.lm(input_ids=ids.to(self.device),
                                     attention_mask=mask.to(self.device)).logits.float()
                    tok = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                            shift_labels.reshape(-1), ignore_index=-100,
                                                            reduction="none").view(shift_labels.shape)
                    sums = (tok * valid).sum(1)
            # one copy to the host per batch: indexing a GPU tensor row by row waits on the device each time
            for i, total, c in zip(batch, sums.tolist(), valid.sum(1).tolist(), strict=True):
                out[i] = total / c if c else None
        return out

    def _head_loss(self, hidden, labels):
        """Token losses of the output head at the scored positions, HEAD_ROWS positions at a time: a
        large token budget on a large vocabulary would otherwise hold them all as float32 logits at once
        (64k positions x 152k tokens is 40 GB)."""
        import torch

        head = self.lm.get_output_embeddings()
        if not len(labels):
            return hidden.new_zeros(0, dtype=torch.float32)
        return torch.cat([torch.nn.functional.cross_entropy(head(hidden[k:k + HEAD_ROWS]).float(),
                                                            labels[k:k + HEAD_ROWS], reduction="none")
                          for k in range(0, len(labels), HEAD_ROWS)])

    def _bytes(self, ids: list[int], mask: list[bool]) -> int:
        """UTF-8 bytes of the scored tokens, decoded one contiguous run at a time."""
        n, run = 0, []
        for t, m in zip([*ids, None], [*mask, False], strict=True):
            if m:
                run.append(t)
            elif run:
                n += len(self.tokenizer.decode(run).encode("utf-8"))
                run = []
        return n

    def score(self, items: Sequence[ScoreInput]) -> list[Score]:
        seqs, masks, meta = [], [], []
        texts = [self._texts(it) for it in items]
        flat = iter(self._encode_many([t for ts in texts for t in ts]))
        for it, ts in zip(items, texts, strict=True):
            cond, cmask, uncond, umask, trunc = self.sequences(it, [next(flat) for _ in ts])
            n_resp = sum(cmask)
            meta.append((n_resp, trunc, self._bytes(cond, cmask) if n_resp else 0))
            seqs += [cond, uncond]
            masks += [cmask, umask]
        losses = self._losses(seqs, masks) if seqs else []
        out = []
        for k, (n_resp, trunc, n_bytes) in enumerate(meta):
            lc, lu = losses[2 * k], losses[2 * k + 1]
            err = None if n_resp > 0 else "empty response"
            bad = lc is None or lu is None or not (math.isfinite(lc) and math.isfinite(lu))
            err = err or ("no loss" if bad else None)
            out.append(Score(None if bad else lc, None if bad else lu, n_resp, trunc, err, n_bytes))
        return out
