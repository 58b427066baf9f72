"""The transformers backend on a tiny Llama built in the test: batched answers equal one-at-a-time answers."""

from __future__ import annotations

import pytest

from instructlake.llm.engine import SamplingParams

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from instructlake.llm.transformers_engine import TransformersEngine
    from tests.tiny_models import build_tiny_llama

    path = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    return TransformersEngine("tiny-llama", str(path), batch_size=3, device="cpu")


PROMPTS = [[{"role": "user", "content": t}] for t in (
    "hello", "write a poem about the sea", "python function add two numbers", "translate good morning into "
                                                                              "french",
    "tag this instruction")]


def test_batched_generation_matches_single_prompts_in_order(engine):
    params = SamplingParams(max_tokens=6)
    batched = engine.generate(PROMPTS, params)
    assert len(batched) == len(PROMPTS)
    for prompt, got in zip(PROMPTS, batched, strict=True):
        [alone] = engine.generate([prompt], params)
        assert got.text == alone.text
        assert got.prompt_tokens == alone.prompt_tokens > 0
        assert 0 < got.completion_tokens <= 6


def test_greedy_is_deterministic(engine):
    params = SamplingParams(max_tokens=4)
    assert [g.text for g in engine.generate(PROMPTS, params)] == [g.text for g in engine.generate(PROMPTS, params)]
