"""vLLM's offline engine on the worker's GPU(s), with guided JSON decoding when a schema is given.

Imported only when the `vllm` backend is configured (the `gpu` extra). The engine is built once per Python
worker (see registry.get_engine) because loading a model takes minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from instructlake.llm.engine import Generation, Messages, SamplingParams


class VLLMEngine:
    backend = "vllm"

    def __init__(self, model: str, model_path: str | None = None, engine_kwargs: dict[str, Any] | None = None):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError("llm.backend = vllm needs the `gpu` extra (pip install 'instructlake[gpu]') "
                               f"on a machine with a CUDA GPU: {e}") from None
        self.model = model
        # YAML settings arrive as strings: "2" -> 2, "0.9" -> 0.9, "true" -> True
        kwargs = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in (engine_kwargs or {}).items()}
        self.llm = LLM(model=model_path or model, **kwargs)

    def _sampling(self, params: SamplingParams):
        from vllm import SamplingParams as VP

        kw: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p,
                              "max_tokens": params.max_tokens, "seed": params.seed}
        if params.json_schema is not None:
            try:  # vLLM >= 0.10
                from vllm.sampling_params import StructuredOutputsParams

                kw["structured_outputs"] = StructuredOutputsParams(json=params.json_schema)
            except ImportError:
                from vllm.sampling_params import GuidedDecodingParams

                kw["guided_decoding"] = GuidedDecodingParams(json=params.json_schema)
        return VP(**kw)

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Generation]:
        outs = self.llm.chat(list(prompts), self._sampling(params), use_tqdm=False)
        result = []
        for o in outs:
            c = o.outputs[0]
            result.append(Generation(text=c.text, prompt_tokens=len(o.prompt_token_ids or []),
                                     completion_tokens=len(c.token_ids or [])))
        return result
