"""Build the configured engine, once per Python process (worker_models)."""

from __future__ import annotations

import logging
from dataclasses import asdict

from instructlake.config import LLMConfig, LLMSettings, config_hash
from instructlake.llm.engine import Engine
from instructlake.worker_models import once_per_worker

log = logging.getLogger(__name__)

# Settings that say how Spark schedules the calls (and what they cost), not how an engine is built: a
# change keeps the engine.
SCHEDULING = ("partitions", "commit_every", "gpus_per_task", "executor_gpus", "prices")


def make_engine(llm: LLMConfig, settings: LLMSettings, threads: int = 0) -> Engine:
    b = llm.backend
    path = settings.model_paths.get(llm.model)
    if b == "http":
        from instructlake.llm.http_engine import HTTPEngine

        return HTTPEngine(llm.model, settings.base_url, settings.api_key_env, settings.concurrency,
                          settings.timeout_s, settings.max_retries, settings.backoff_s, settings.structured_output)
    if b == "transformers":
        from instructlake.llm.transformers_engine import TransformersEngine

        return TransformersEngine(llm.model, path, settings.batch_size, settings.device)
    if b == "vllm":
        from instructlake.llm.vllm_engine import VLLMEngine

        return VLLMEngine(llm.model, path, settings, threads)
    if b == "scripted":
        from instructlake.llm.scripted import ScriptedEngineDouble

        return ScriptedEngineDouble(llm.model, settings.calls_file)
    raise ValueError(f"llm.backend {b!r} has no engine (use http, transformers, vllm or scripted)")


def get_engine(llm: LLMConfig, settings: LLMSettings, threads: int = 0) -> Engine:
    """The worker's engine for this model. Keyed by what builds an engine (backend, model, settings), not by
    sampling: stages that sample one model differently share one engine instead of loading it again,
    which on a GPU would not even fit beside the first."""

    def load() -> Engine:
        log.info("loading LLM engine %s (%s)", llm.backend, llm.model)
        return make_engine(llm, settings, threads)

    built_from = {k: v for k, v in asdict(settings).items() if k not in SCHEDULING}
    key = {"backend": llm.backend, "model": llm.model, "settings": config_hash(built_from),
           "threads": threads}
    return once_per_worker("llm", key, load)
