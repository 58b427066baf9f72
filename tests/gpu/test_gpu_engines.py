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


ITEMS = [("user : hello\nAssistant:", " hello world"), ("user : write a poem about the sea\nAssistant:",
         " the sea the sea world"), ("", " add two numbers"), ("user : translate good morning into french\n"
         "Assistant:", " good morning french answer json the sea the sea"), ("user : tag this\nAssistant:", " tag")]


def _scores(path, device, dtype="auto", budget=0, fixed=0):
    from instructlake.scoring.scorer import ScoreInput, TransformersScorer

    scorer = TransformersScorer("tiny", str(path), max_length=64, device=device, dtype=dtype, token_budget=budget,
                                fixed_batch=fixed)
    return [(s.loss_cond, s.loss_uncond) for s in scorer.score([ScoreInput(c, r) for c, r in ITEMS * 4])]


def _largest_gap(a, b):
    return max(abs(x - y) for pa, pb in zip(a, b, strict=True) for x, y in zip(pa, pb, strict=True))


def test_scorer_on_cuda_matches_cpu(tmp_path):
    """The GPU path (bf16 and SDPA by default, the lean forward, right padding with no attention mask)
    gives the CPU's losses: to 1e-4 in float32, to bf16's precision by default."""
    from tests.tiny_models import build_tiny_llama

    path = build_tiny_llama(tmp_path / "tiny", seed=3)
    cpu = _scores(path, "cpu")
    assert _largest_gap(cpu, _scores(path, "cuda", dtype="float32")) < 1e-4
    assert _largest_gap(cpu, _scores(path, "cuda")) < 0.05  # bf16 keeps 8 bits of mantissa
    # batched with padding against one sequence per pass, both on the GPU in float32
    assert _largest_gap(_scores(path, "cuda", dtype="float32", fixed=1),
                        _scores(path, "cuda", dtype="float32", budget=10_000)) < 1e-4


def test_train_reference_on_cuda_saves_a_model_the_cpu_scorer_loads(tmp_path):
    from instructlake.scoring.reference import ReferenceSpec, train_reference
    from instructlake.scoring.scorer import ScoreInput, TransformersScorer

    texts = [f"{c} {r}" for c, r in ITEMS] * 200
    spec = ReferenceSpec(vocab_size=300, n_layer=2, n_embd=64, n_head=2, n_positions=128, seq_len=32, seconds=5)
    info = train_reference(texts, tmp_path / "ref", spec, device="cuda")
    assert info["steps"] > 50 and info["last_loss"] < info["first_loss"]
    [s] = TransformersScorer("ref", str(tmp_path / "ref"), device="cpu").score([ScoreInput("user : hello", " world")])
    assert s.error is None and s.loss_cond > 0


def test_sentence_embedder_on_cuda_matches_cpu(tmp_path):
    """A tiny random BERT saved as a sentence-transformers model: the GPU's unit vectors are the CPU's."""
    import numpy as np
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    from instructlake.embed.embedder import SentenceTransformerEmbedder
    from tests.tiny_models import build_tiny_llama

    tok_dir = build_tiny_llama(tmp_path / "tok")  # for its word-level tokenizer
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(tmp_path / "bert")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(tmp_path / "bert")
    word = models.Transformer(str(tmp_path / "bert"), max_seq_length=32)
    st = SentenceTransformer(modules=[word, models.Pooling(32, "mean")])
    st.save(str(tmp_path / "st"))
    texts = [c + r for c, r in ITEMS]
    cpu = SentenceTransformerEmbedder("tiny", str(tmp_path / "st"), device="cpu").encode(texts)
    gpu = SentenceTransformerEmbedder("tiny", str(tmp_path / "st"), device="cuda").encode(texts)
    assert cpu.shape == gpu.shape == (len(texts), 32) and np.allclose(np.linalg.norm(gpu, axis=1), 1, atol=1e-5)
    assert float(np.abs(cpu - gpu).max()) < 1e-3
