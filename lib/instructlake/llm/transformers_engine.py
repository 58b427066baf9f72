"""A local causal LM through Hugging Face transformers, batched (CPU or one GPU).

For small models, tests and CPU runs; vLLM is the engine for real throughput on a GPU. Prompts go through
the tokenizer's chat template when it has one, else a plain "Role: text" rendering. Batches are sorted by
prompt length so padding stays small; answers come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from instructlake.llm.engine import Generation, Messages, SamplingParams, render_plain


class TransformersEngine:
    backend = "transformers"

    def __init__(self, model: str, model_path: str | None = None, batch_size: int = 8, device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        path = model_path or model
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.lm = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        self.batch_size = max(1, batch_size)

    def _render(self, messages: Messages) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return render_plain(messages)

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Generation]:
        import torch

        texts = [self._render(m) for m in prompts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[Generation | None] = [None] * len(texts)
        limit = getattr(self.lm.config, "max_position_embeddings", None) or 4096
        for start in range(0, len(order), self.batch_size):
            idx = order[start: start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                                 max_length=max(1, limit - params.max_tokens)).to(self.device)
            sample = params.temperature > 0
            if sample:
                torch.manual_seed(params.seed)
            with torch.no_grad():
                gen = self.lm.generate(
                    **enc, max_new_tokens=params.max_tokens, do_sample=sample,
                    temperature=params.temperature if sample else None, top_p=params.top_p if sample else None,
                    pad_token_id=self.tokenizer.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(idx):
                tokens = new[row]
                n_new = int((tokens != self.tokenizer.pad_token_id).sum())
                out[i] = Generation(text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                                    prompt_tokens=int(enc["attention_mask"][row].sum()), completion_tokens=n_new)
        return [g for g in out if g is not None]
