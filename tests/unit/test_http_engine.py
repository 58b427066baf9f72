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

            def do_GET(self):  # what a followed redirect would send
                outer.seen.append({"body": None, "auth": self.headers.get("Authorization")})
                self.send_response(404)
                self.end_headers()

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append({"body": body, "auth": self.headers.get("Authorization")})
                step = outer.script.pop(0) if outer.script else "good"
                if callable(step):  # a hand-written answer: redirect, oversized or hostile body
                    step(self)
                    return
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
    eng = HTTPEngine("m", srv.url, api_key_env="", max_retries=5, backoff_s=0.01)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert "HTTP 400" in g.error and eng.requests_sent == 1


def test_batch_keeps_order_under_concurrency(server_factory):
    srv = server_factory([])
    eng = HTTPEngine("m", srv.url, api_key_env="", concurrency=4)
    outs = eng.generate([[{"role": "user", "content": str(i)}] for i in range(10)], SamplingParams())
    assert len(outs) == 10 and all(o.error is None for o in outs)
    assert sorted(s["body"]["messages"][0]["content"] for s in srv.seen) == sorted(str(i) for i in range(10))


def test_unreachable_server_is_an_error_not_an_exception():
    eng = HTTPEngine("m", "http://127.0.0.1:9/v1", api_key_env="", max_retries=1, backoff_s=0.01, timeout_s=1)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert g.error and "unreachable" in g.error


def _answer(status: int, body: bytes, headers: dict | None = None):
    def send(handler):
        handler.send_response(status)
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return send


def test_a_redirect_is_not_followed_with_the_key(server_factory, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    elsewhere = server_factory([])
    # urllib itself re-sends a POST answered 302 as a GET to the new host, Authorization header included
    srv = server_factory([_answer(302, b"", {"Location": elsewhere.url + "/chat/completions"})])
    eng = HTTPEngine("m", srv.url, api_key_env="TEST_LLM_KEY", max_retries=3, backoff_s=0.01)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert g.error and "redirects are not followed" in g.error and "302" in g.error
    assert elsewhere.seen == [] and eng.requests_sent == 1  # not retried, never sent on
    assert "sk-secret" not in g.error


def test_a_missing_key_variable_stops_the_engine_at_start(monkeypatch):
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    from instructlake.config import ConfigError

    with pytest.raises(ConfigError, match="TEST_LLM_KEY, which is not set.*spark.executorEnv.TEST_LLM_KEY"):
        HTTPEngine("m", "http://127.0.0.1:9/v1", api_key_env="TEST_LLM_KEY")


def test_hostile_bodies_are_error_rows(server_factory):
    big = json.dumps({"choices": [{"message": {"content": "x" * 3_000_000}}]}).encode()
    deep = b"[" * 200_000 + b"]" * 200_000
    srv = server_factory([_answer(200, big), _answer(200, deep)])
    eng = HTTPEngine("m", srv.url, api_key_env="", concurrency=1, max_retries=0, max_response_bytes=1 << 20)
    [g1] = eng.generate([[{"role": "user", "content": "1"}]], SamplingParams())
    [g2] = eng.generate([[{"role": "user", "content": "2"}]], SamplingParams())
    assert "over 1,048,576 bytes" in g1.error
    assert "not a chat completion" in g2.error


def test_a_lone_surrogate_in_the_answer_becomes_a_replacement_character(server_factory):
    import pyarrow as pa

    body = b'{"choices": [{"message": {"content": "smile \\ud83d"}}]}'
    srv = server_factory([_answer(200, body)])
    eng = HTTPEngine("m", srv.url, api_key_env="", max_retries=0)
    [g] = eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams())
    assert g.error is None and g.text == "smile \ufffd"
    pa.array([g.text])  # storable
