"""The OpenAI-compatible client against a real server on 127.0.0.1 that misbehaves before answering."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from instructlake.llm.engine import SamplingParams
from instructlake.llm.http_engine import HTTPEngine

GOOD = {"choices": [{"message": {"role": "assistant", "content": "[\"ok\"]"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2}}


class FlakyServer:
    """Answers each request with the next scripted behaviour: an HTTP status, 'sleep', 'garbage' or 'good'."""

    def __init__(self, script: list):
        self.script = list(script)
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append({"body": body, "auth": self.headers.get("Authorization")})
                step = outer.script.pop(0) if outer.script else "good"
                if step == "sleep":
                    time.sleep(1.5)
                    step = "good"
                if isinstance(step, int):
                    self.send_response(step)
                    if step == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                payload = b"<html>gateway hiccup</html>" if step == "garbage" else json.dumps(GOOD).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def make(script):
        s = FlakyServer(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def test_retries_429_500_timeout_and_garbage_then_answers(server_factory, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    srv = server_factory([429, 500, "sleep", "garbage"])
    eng = HTTPEngine("m", srv.url, api_key_env="TEST_LLM_KEY", concurrency=1, timeout_s=0.5, max_retries=5,
                     backoff_s=0.01)
    schema = {"type": "array"}
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=9, json_schema=schema))
    assert g.error is None and g.text == '["ok"]' and (g.prompt_tokens, g.completion_tokens) == (7, 2)
    assert eng.requests_sent == 5
    assert len(srv.seen) == 5
    first = srv.seen[0]
    assert first["auth"] == "Bearer sk-secret-value"
    assert first["body"]["max_tokens"] == 9 and first["body"]["response_format"]["json_schema"]["schema"] == schema


def test_gives_up_with_an_error_row_and_never_leaks_the_key(server_factory, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    srv = server_factory([503] * 10)
    eng = HTTPEngine("m", srv.url, api_key_env="TEST_LLM_KEY", max_retries=2, backoff_s=0.01)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert g.error and "gave up after 3 attempts" in g.error and "503" in g.error
    assert "sk-secret" not in g.error


def test_client_errors_are_not_retried(server_factory):
    srv = server_factory([400, "good"])
    eng = HTTPEngine("m", srv.url, max_retries=5, backoff_s=0.01)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert "HTTP 400" in g.error and eng.requests_sent == 1


def test_batch_keeps_order_under_concurrency(server_factory):
    srv = server_factory([])
    eng = HTTPEngine("m", srv.url, concurrency=4)
    outs = eng.generate([[{"role": "user", "content": str(i)}] for i in range(10)], SamplingParams())
    assert len(outs) == 10 and all(o.error is None for o in outs)
    assert sorted(s["body"]["messages"][0]["content"] for s in srv.seen) == sorted(str(i) for i in range(10))


def test_unreachable_server_is_an_error_not_an_exception():
    eng = HTTPEngine("m", "http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01, timeout_s=1)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert g.error and "unreachable" in g.error
