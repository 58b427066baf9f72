"""The HTTP engine against a real vLLM server (the OpenAI-compatible one `vllm serve` runs) on 127.0.0.1,
with the tiny random-weight model: batching, response_format with a JSON schema, refusals, token counts,
and the tagging stage through Spark. Faults a real server does not make on demand (429, 5xx, timeouts)
stay with the fault-injecting server in tests/unit/test_http_engine.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import jsonschema
import pytest

from instructlake.llm import prompts
from instructlake.llm.engine import SamplingParams
from instructlake.llm.http_engine import HTTPEngine
from instructlake.llm.structured import generate_json
from tests.vllm_support import free_port, require_vllm, serve_command, wait_until_serving

TAG = prompts.load("tag_instruction")


@pytest.fixture(scope="module")
def vllm_server(tiny_chat_model, tmp_path_factory):
    require_vllm()
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(serve_command(tiny_chat_model, port), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "VLLM_LOGGING_LEVEL": "INFO"})
    try:
        wait_until_serving(proc, port, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def engine(url: str, structured: bool = True) -> HTTPEngine:
    return HTTPEngine("tiny", url, api_key_env="", concurrency=8, timeout_s=60, max_retries=1, backoff_s=0.1,
                      structured=structured)


def messages(n: int) -> list:
    return [TAG.render(instruction=f"Write a poem about the sea, take {i}.") for i in range(n)]


def test_response_format_constrains_a_batch_and_token_counts_are_the_servers(vllm_server, tiny_chat_model):
    from transformers import AutoTokenizer

    e = engine(vllm_server)
    msgs = messages(24)
    params = SamplingParams(max_tokens=400, temperature=1.0, seed=5, json_schema=TAG.schema)
    outs = generate_json(e, msgs, params, TAG.schema, max_reasks=0)
    assert [o.error for o in outs] == [None] * 24
    assert e.requests_sent == 24  # one request per prompt, on 8 threads, no retries
    for o in outs:
        jsonschema.validate(json.loads(o.text, strict=False), TAG.schema)
    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    want = [len(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True)["input_ids"]) for m in msgs]
    assert [o.prompt_tokens for o in outs] == want
    assert all(0 < o.completion_tokens <= 400 for o in outs)

    # without response_format the same random weights rarely write JSON at all: the schema did the work
    free = generate_json(engine(vllm_server, structured=False), msgs[:8],
                         SamplingParams(max_tokens=60, temperature=1.0, seed=5), TAG.schema, max_reasks=0)
    assert sum(o.error is None for o in free) <= 1


def test_a_prompt_over_the_context_is_refused_once_and_cached_not_retried(vllm_server):
    e = engine(vllm_server)
    long = [{"role": "user", "content": "sea " * 3000}]
    g = e.generate([long], SamplingParams(max_tokens=8))[0]
    assert g.error and "HTTP 400" in g.error and g.retryable is False
    assert e.requests_sent == 1
    out = generate_json(e, [long], SamplingParams(max_tokens=8), None, max_reasks=2)[0]
    assert out.error.startswith("not answered") and out.transport_error is False and out.attempts == 1


def test_tagging_through_spark_on_the_server(spark, vllm_server, tmp_path):
    from instructlake.config import load_config
    from instructlake.store import Store
    from instructlake.tagging import stage as tagging
    from tests.conftest import TEST_SETTINGS
    from tests.integration.test_tagging import INSTRUCTIONS, ingest_instructions

    cfg = load_config("local", [*TEST_SETTINGS, "tagging.llm.backend=http", "tagging.llm.model=tiny",
                                "tagging.llm.temperature=1.0", "tagging.llm.max_tokens=400",
                                f"platform.llm.base_url={vllm_server}", "platform.llm.api_key_env=",
                                "platform.llm.batch_size=4"], warehouse=str(tmp_path / "wh"))
    store = Store(spark, cfg.warehouse)
    ingest_instructions(spark, store, cfg, tmp_path, INSTRUCTIONS)
    c = tagging.run(spark, store, cfg).counts
    assert (c["input"], c["tagged"], c["llm_calls"], c["llm_invalid"], c["llm_backend_errors"]) == (6, 6, 6, 0, 0)
    again = tagging.run(spark, store, cfg).counts
    assert again["input"] == 0
