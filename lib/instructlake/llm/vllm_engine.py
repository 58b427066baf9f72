"""vLLM's offline engine (`vllm.LLM`), with the task's JSON schema enforced by constrained decoding.

Imported only when a stage's `llm.backend` is `vllm`. The `gpu` extra installs the official CUDA build for
clusters; `python build.py setup` installs vLLM's CPU build here (Linux x86-64), which runs the same code.
The engine is built once per Python worker (registry.get_engine) because loading a model takes minutes. Its
engine core runs inside the worker (platform.llm.engine_core_in_worker), so nothing outlives a worker that
Spark kills; in a process of its own it is shut down at exit.

Where the two builds differ, the code branches on `vllm.platforms.current_platform.is_cpu()`: on the CPU
build `gpu_memory_utilization` would reserve that fraction of host RAM for the KV cache, so the KV cache is
sized in bytes instead (platform.llm.kv_cache_gib), and tensor parallelism is a GPU setting.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from instructlake.config import LLMSettings
from instructlake.llm.engine import Generation, Messages, SamplingParams, prompt_hash

log = logging.getLogger(__name__)

# The CPU build's KV cache when platform.llm.kv_cache_gib is 0: enough for the tiny models of tests and
# small ones on a laptop, and far below what `gpu_memory_utilization` would take of host RAM.
CPU_KV_CACHE_GIB = 1.0
# Tokens one engine step may prefill on the CPU build, at least (a prompt must fit in one step there).
CPU_STEP_TOKENS = 8192


def llvmlite_safe_for_kernel_scan() -> None:
    """vLLM's CPU build, building an engine, scans every loaded module for Triton kernels and reads
    vars(x) of each attribute x that has a __dict__ (vllm/triton_utils/dispatcher.py, _rebind_kernels).
    llvmlite's `ffi.lib` makes up any attribute it is asked for, __dict__ included, as a function
    wrapper, so the scan fails ("'_lib_fn_wrapper' object has no attribute 'get'") in a process that
    loaded numba first: a Spark Python worker that ran dedup (dedup/kernels.py), then an LLM stage. An
    empty __dict__ entry in its table of made-up attributes ends that; llvmlite has no function so named."""
    ffi = sys.modules.get("llvmlite.binding.ffi")
    table = getattr(getattr(ffi, "lib", None), "_fntab", None)
    if isinstance(table, dict):
        table["__dict__"] = {}


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise RuntimeError("llm.backend = vllm needs vLLM: the `gpu` extra (pip install "
                           "'instructlake[gpu]') on a CUDA machine, or `python build.py setup` for the CPU build on Linux x86-64: "
                           f"{e}") from None
    return vllm


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def engine_arguments(settings: LLMSettings, cpu: bool) -> dict[str, Any]:
    """Keyword arguments for vllm.LLM from the platform settings; engine_kwargs (any LLM argument) win."""
    kw: dict[str, Any] = {"dtype": settings.dtype, "enforce_eager": settings.enforce_eager,
                          "structured_outputs_config": {"backend": "xgrammar",
                                                        # compact JSON: no model can pad an answer
                                                        # with whitespace until max_tokens
                                                        "disable_any_whitespace": True}}
    if settings.max_model_len:
        kw["max_model_len"] = settings.max_model_len
    kv_gib = settings.kv_cache_gib or (CPU_KV_CACHE_GIB if cpu else 0)
    if kv_gib:
        kw["kv_cache_memory_bytes"] = int(kv_gib * (1 << 30))
    if cpu:
        # The CPU build crashes ("CPU Generator does not use offset") when it prefills a seeded request in
        # chunks, so each prompt is prefilled in one step: no chunks, and a step budget that holds a prompt.
        # Without chunks vLLM refuses a context longer than the step, so the model's own (often 32k) gives
        # way to the step size unless max_model_len is set.
        kw["enable_chunked_prefill"] = False
        kw["max_model_len"] = settings.max_model_len or CPU_STEP_TOKENS
        kw["max_num_batched_tokens"] = max(settings.max_model_len, CPU_STEP_TOKENS)
    else:
        kw["gpu_memory_utilization"] = settings.gpu_memory_utilization
        kw["tensor_parallel_size"] = settings.tensor_parallel_size
    # YAML settings arrive as strings: "2" -> 2, "0.9" -> 0.9, "true" -> True
    kw.update({k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in settings.engine_kwargs.items()})
    return kw


def prompt_seed(seed: int, messages: Messages) -> int:
    """The sampling seed of one prompt: llm.seed and the prompt together. A re-run samples the same answer,
    and two prompts do not share one random stream (with one seed for all, every answer of a batch would
    draw the same random numbers)."""
    digest = hashlib.sha256(f"{seed}\u0001{prompt_hash(messages)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class VLLMEngine:
    backend = "vllm"
    # vLLM schedules its own batches: hand it a whole Arrow batch of prompts at once
    takes_whole_batches = True

    def __init__(self, model: str, model_path: str | None, settings: LLMSettings, threads: int = 0):
        vllm = _import_vllm()
        self.model = model
        if threads and on_cpu():
            # PySpark sets OMP_NUM_THREADS to spark.task.cpus (1) in its Python workers, which leaves the
            # CPU build one core: measured 1.6x slower on 2 cores. The worker's share of the host instead.
            import torch

            os.environ["OMP_NUM_THREADS"] = str(threads)
            torch.set_num_threads(threads)
        # read when vLLM builds the engine; in-process, the engine core lives and dies with this process
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if settings.engine_core_in_worker else "1"
        kwargs = engine_arguments(settings, on_cpu())
        log.info("starting vLLM %s for %s (%s)", vllm.__version__, model, model_path or model)
        llvmlite_safe_for_kernel_scan()
        self.llm = vllm.LLM(model=model_path or model, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.calls_file = settings.calls_file
        self._closed = False
        atexit.register(self.close)

    def _sampling(self, params: SamplingParams, messages: Messages):
        from vllm import SamplingParams as VP
        from vllm.sampling_params import StructuredOutputsParams

        kw: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p,
                              "max_tokens": params.max_tokens, "seed": prompt_seed(params.seed, messages)}
        if params.json_schema is not None:
            kw["structured_outputs"] = StructuredOutputsParams(json=params.json_schema)
        return VP(**kw)

    def prompt_tokens(self, messages: Messages) -> int:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # a BatchEncoding or a list

    def _too_long(self, messages: Messages) -> Generation | None:
        n = self.prompt_tokens(messages)
        if n < self.max_model_len:
            return None
        return Generation(prompt_tokens=n, retryable=False,
                          error=f"the prompt is {n} tokens, at or over max_model_len {self.max_model_len} "
                                "(platform.llm.max_model_len)")

    def _chat(self, prompts: list[Messages], params: SamplingParams) -> list[Generation]:
        outs = self.llm.chat(prompts, [self._sampling(params, p) for p in prompts], use_tqdm=False)
        if self.calls_file:  # one line per prompt answered, written where it is answered (tests count these)
            with open(self.calls_file, "a", encoding="utf-8") as f:
                f.writelines(f"{os.getpid()} {prompt_hash(m)}\n" for m in prompts)
        return [Generation(text=o.outputs[0].text, prompt_tokens=len(o.prompt_token_ids or []),
                           completion_tokens=len(o.outputs[0].token_ids or [])) for o in outs]

    def _one_by_one(self, prompts: list[Messages], params: SamplingParams) -> list[Generation]:
        """After vLLM refused a whole call for one prompt: each prompt alone, a refusal kept as its answer."""
        from vllm.exceptions import VLLMValidationError

        result = []
        for p in prompts:
            try:
                result += self._chat([p], params)
            except (VLLMValidationError, ValueError) as e:
                result.append(Generation(error=f"vLLM refused the prompt: {e}", retryable=False))
        return result

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Generation]:
        from vllm.exceptions import VLLMValidationError

        asked = [list(m) for m in prompts]
        if not asked:
            return []
        try:
            return self._chat(asked, params)
        except (VLLMValidationError, ValueError) as e:
            # vLLM refuses a whole call for one prompt over the context; tokenizing every prompt first to
            # find such prompts would cost as much as a second tokenization of the batch, so only now
            log.warning("vLLM refused a batch of %d prompts (%s); answering the ones over the context "
                        "apart", len(asked), e)
        result: list[Generation | None] = [self._too_long(m) for m in asked]
        fits = [i for i, g in enumerate(result) if g is None]
        if fits:
            rest = [asked[i] for i in fits]
            try:
                gens = self._chat(rest, params)
            except (VLLMValidationError, ValueError):
                gens = self._one_by_one(rest, params)
            for i, g in zip(fits, gens, strict=True):
                result[i] = g
        return [g for g in result if g is not None]

    def close(self) -> None:
        """Stop the engine core process (and its workers); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # at interpreter exit a half-torn-down engine may raise; the process ends anyway
        try:
            self.llm.llm_engine.engine_core.shutdown()
        except Exception as e:
            log.debug("vLLM shutdown: %s", e)
