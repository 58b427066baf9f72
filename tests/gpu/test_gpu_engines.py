"""Engines on a CUDA device (marker gpu): skipped with the reason where there is no GPU.

vLLM on a GPU needs the `gpu` extra and a model directory: INSTRUCTLAKE_TEST_VLLM_MODEL names one (a small
instruct model such as Qwen2.5-0.5B-Instruct on a cluster volume); nothing is downloaded. The vLLM tests
that run everywhere, on the CPU build, are tests/integration/test_vllm*.py.
"""

from __future__ import annotations

import os

import pytest

from instructlake.llm.engine import SamplingParams

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


def test_transformers_engine_on_cuda_matches_cpu(tmp_path):
    from instructlake.llm.transformers_engine import TransformersEngine
    from tests.tiny_models import build_tiny_llama

    path = build_tiny_llama(tmp_path / "tiny")
    prompts = [[{"role": "user", "content": t}] for t in ("hello world", "write a poem about the sea", "add two numbers")]
    params = SamplingParams(max_tokens=5)
    cpu = TransformersEngine("tiny", str(path), batch_size=2, device="cpu").generate(prompts, params)
    gpu = TransformersEngine("tiny", str(path), batch_size=2, device="cuda").generate(prompts, params)
    assert [g.prompt_tokens for g in gpu] == [c.prompt_tokens for c in cpu]
    same = sum(g.text == c.text for g, c in zip(gpu, cpu, strict=True))
    assert same >= 2  # greedy on random weights: a near-tie may flip one token between kernels


def test_vllm_engine_answers_with_guided_json():
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'instructlake[gpu]')")
    model = os.environ.get("INSTRUCTLAKE_TEST_VLLM_MODEL")
    if not model:
        pytest.skip("INSTRUCTLAKE_TEST_VLLM_MODEL does not name a local model directory")
    from instructlake.config import LLMSettings
    from instructlake.llm import prompts
    from instructlake.llm.structured import generate_json
    from instructlake.llm.vllm_engine import VLLMEngine

    engine = VLLMEngine("test-model", model, LLMSettings(gpu_memory_utilization=0.5, max_model_len=2048))
    p = prompts.load("tag_instruction")
    msgs = [p.render(instruction=t) for t in ("Write a Python function that reverses a list.",
                                              "Translate 'good night' into Spanish.")]
    outs = generate_json(engine, msgs, SamplingParams(max_tokens=200, json_schema=p.schema), p.schema, max_reasks=1)
    assert all(o.error is None for o in outs), [o.error for o in outs]
    assert all(isinstance(t["tag"], str) and t["tag"] for o in outs for t in o.value)
