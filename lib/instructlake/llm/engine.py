"""The Engine protocol: a batch of chat prompts in, one Generation per prompt out.

Every backend (vLLM, transformers, an OpenAI-compatible server, the scripted test double) implements
`generate`. A prompt that fails after the backend's own retries comes back as a Generation with `error`
set; only a broken setup (missing package, bad model path) raises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": "..."}]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    # A JSON schema the answer must follow: backends that can constrain decoding to it do (vLLM guided
    # decoding, a server's response_format); the answer is parsed and validated either way.
    json_schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def key(self) -> str:
        """Hash of everything that changes an answer: part of every cache key."""
        data = asdict(self)
        payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Generation:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # set when the backend gave no answer (after its retries)
    # False for a refusal asking again cannot change (a prompt over the model's context): cached as invalid
    retryable: bool = True


@runtime_checkable
class Engine(Protocol):
    backend: str
    model: str

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Generation]: ...


def prompt_hash(messages: Messages) -> str:
    payload = json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def render_plain(messages: Messages) -> str:
    """A chat as plain text, for models without a chat template."""
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"
