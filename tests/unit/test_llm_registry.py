"""Engines per worker: one per model and engine settings, whatever the sampling; vLLM's arguments per build."""

from __future__ import annotations

from dataclasses import replace

from instructlake.config import LLMConfig, LLMSettings
from instructlake.llm.registry import get_engine
from instructlake.llm.vllm_engine import engine_arguments, prompt_seed

SCRIPT = "instructlake.llm.scripted:keyword_tags"


def test_stages_that_sample_one_model_differently_share_its_engine():
    a = LLMConfig(backend="scripted", model=SCRIPT, temperature=0.0, max_tokens=512)
    b = replace(a, temperature=0.7, max_tokens=1024, max_reasks=0)
    s = LLMSettings(partitions=1)
    assert get_engine(a, s) is get_engine(b, replace(s, partitions=4, commit_every=10))
    assert get_engine(a, s) is not get_engine(a, replace(s, calls_file="/tmp/x"))  # builds another engine
    assert get_engine(a, s) is not get_engine(replace(a, model="instructlake.llm.scripted:synth"), s)


def test_vllm_arguments_on_the_cpu_build_and_on_a_gpu():
    s = LLMSettings(max_model_len=4096, engine_kwargs={"max_num_seqs": "64", "dtype": "bfloat16"})
    cpu, gpu = engine_arguments(s, cpu=True), engine_arguments(s, cpu=False)
    # CPU: the KV cache in bytes (a memory fraction would reserve host RAM), no chunked prefill
    assert cpu["kv_cache_memory_bytes"] == 1 << 30 and "gpu_memory_utilization" not in cpu
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] == 8192
    assert "tensor_parallel_size" not in cpu
    assert gpu["gpu_memory_utilization"] == 0.9 and "kv_cache_memory_bytes" not in gpu
    assert gpu["tensor_parallel_size"] == 1 and "enable_chunked_prefill" not in gpu
    for kw in (cpu, gpu):  # engine_kwargs win, YAML strings typed
        assert kw["max_num_seqs"] == 64 and kw["dtype"] == "bfloat16" and kw["max_model_len"] == 4096
        assert kw["structured_outputs_config"] == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert engine_arguments(replace(s, kv_cache_gib=2.5), cpu=False)["kv_cache_memory_bytes"] == int(2.5 * (1 << 30))
    # no max_model_len: the model's on a GPU, one prefill step's on the CPU build (no chunks there)
    assert "max_model_len" not in engine_arguments(LLMSettings(), cpu=False)
    assert engine_arguments(LLMSettings(), cpu=True)["max_model_len"] == 8192


def test_each_prompt_has_its_own_reproducible_seed():
    m1, m2 = [{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]
    assert prompt_seed(0, m1) == prompt_seed(0, list(m1))
    assert len({prompt_seed(0, m1), prompt_seed(0, m2), prompt_seed(1, m1)}) == 3
    assert 0 <= prompt_seed(7, m2) < 2**31
