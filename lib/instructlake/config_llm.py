"""The semantic config's model section, used by every LLM stage's section (tagging.llm, synth.llm,
synth.oracle, synth.diagnose_model): which model answers and how it samples."""

from __future__ import annotations

from dataclasses import dataclass

from instructlake.errors import ConfigError

LLM_BACKENDS = ("none", "scripted", "transformers", "http", "vllm")


@dataclass(frozen=True)
class LLMConfig:
    """Which model answers and how it samples: everything here changes answers, so it is hashed."""

    # none | scripted (a test double; `model` is its 'module:function') | transformers | http | vllm
    backend: str = "none"
    # The model's name as the backend knows it (a server's model id, a hub name); a local path for it
    # comes from platform.llm.model_paths, which is not hashed.
    model: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    # An answer that is not valid JSON for the task's schema is re-asked this many times with the error.
    max_reasks: int = 2

    def __post_init__(self) -> None:
        if self.backend not in LLM_BACKENDS:
            raise ConfigError(f"llm.backend must be one of {', '.join(LLM_BACKENDS)}, not {self.backend!r}")
        if self.backend != "none" and not self.model:
            raise ConfigError(f"llm.backend {self.backend!r} needs llm.model")
        if self.max_reasks < 0 or self.max_tokens < 1:
            raise ConfigError("llm.max_reasks must be >= 0 and llm.max_tokens >= 1")
