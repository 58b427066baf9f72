"""An OpenAI-compatible chat-completions client (vLLM serve, TGI, llama.cpp server, OpenAI, ...).

Standard library only. Prompts of a batch run on a bounded thread pool; each request is retried with
exponential backoff and jitter on 429, 5xx, timeouts, dropped connections and unparseable bodies (honouring
Retry-After). Other 4xx answers are not retried; a 400, 413 or 422 (a prompt over the context) is cached as
the prompt's answer, a bad key or URL is asked again on the next run. The API key is read from the
environment variable named in the settings and is never put in an error message, a log line or a cache row;
a named variable that is not set is an error when the engine starts (on a cluster: in each executor), never
a request sent without credentials. Redirects are never followed (a POST carrying the key would go to
another host), response bodies are read up to `max_response_bytes`, and a body nested too deeply is an
unusable answer, not a crash.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from instructlake.config import ConfigError
from instructlake.jsontext import loads as bounded_loads
from instructlake.jsontext import scrub_text
from instructlake.llm.engine import Generation, Messages, SamplingParams

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# The server refused this request for what it is (a prompt over the model's context is a 400): the same
# body would be refused again, so the refusal is cached as the prompt's answer. Other 4xx (a bad key, a
# wrong model name or URL) are setup errors a re-run after the fix should ask again.
REFUSED_STATUS = {400, 413, 422}
# A chat completion is a few nested objects; a body deeper than this is not one.
MAX_BODY_DEPTH = 32


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib would resend the POST, Authorization header included, wherever the
    server points, https to http too."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class TransientError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class HTTPEngine:
    backend = "http"

    def __init__(self, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 5, backoff_s: float = 1.0,
                 structured: bool = True, max_response_bytes: int = 16 << 20):
        if api_key_env and not os.environ.get(api_key_env):
            raise ConfigError(
                f"platform.llm.api_key_env names {api_key_env}, which is not set in this process's "
                f"environment; set it (on a cluster in every executor too, e.g. "
                f"spark.executorEnv.{api_key_env}), or set platform.llm.api_key_env to '' for a server that "
                "needs no key")
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.structured = structured
        self.max_response_bytes = max_response_bytes
        self.requests_sent = 0  # attempts, retries included (for run records and tests)

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Generation]:
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda m: self._one(m, params), prompts))

    def _body(self, messages: Messages, params: SamplingParams) -> bytes:
        body = {"model": self.model, "messages": messages, "temperature": params.temperature,
                "top_p": params.top_p, "max_tokens": params.max_tokens, "seed": params.seed}
        if params.json_schema is not None and self.structured:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": params.json_schema}}
        return json.dumps(body).encode("utf-8")

    def _one(self, messages: Messages, params: SamplingParams) -> Generation:
        body = self._body(messages, params)
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(body)
            except TransientError as e:
                last = str(e)
                if attempt == self.max_retries:
                    break
                wait = e.retry_after if e.retry_after is not None else self.backoff_s * 2 ** attempt
                wait = min(60.0, wait) * (0.75 + 0.5 * random.random())
                log.warning("%s (attempt %d/%d); retrying in %.1fs", last, attempt + 1, self.max_retries + 1, wait)
                time.sleep(wait)
            except PermanentError as e:
                return Generation(error=str(e), retryable=e.retryable)
        return Generation(error=f"gave up after {self.max_retries + 1} attempts: {last}")

    def _post(self, body: bytes) -> Generation:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.api_key_env, '')}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        self.requests_sent += 1
        try:
            with _OPENER.open(req, timeout=self.timeout_s) as resp:
                raw = resp.read(self.max_response_bytes + 1)
        except urllib.error.HTTPError as e:
            snippet = _snippet(e.read(4096))
            if 300 <= e.code < 400:
                where = e.headers.get("Location", "?") if e.headers else "?"
                raise PermanentError(f"{self.url} answered HTTP {e.code}, a redirect to {where}: redirects "
                                     "are not followed (the request carries credentials); set "
                                     "platform.llm.base_url to the final address") from None
            if e.code in RETRY_STATUS:
                raise TransientError(f"{self.url} answered HTTP {e.code}: {snippet}", _retry_after(e)) from None
            raise PermanentError(f"{self.url} answered HTTP {e.code}: {snippet}",
                                 retryable=e.code not in REFUSED_STATUS) from None
        except TimeoutError as e:
            raise TransientError(f"{self.url} timed out after {self.timeout_s:g}s") from e
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            raise TransientError(f"{self.url} unreachable: {getattr(e, 'reason', e)}") from None
        if len(raw) > self.max_response_bytes:
            raise PermanentError(f"{self.url} sent a body over {self.max_response_bytes:,} bytes; "
                                 "not read further")
        try:
            data = bounded_loads(raw, MAX_BODY_DEPTH)
            choice = data["choices"][0]
            text = scrub_text(choice["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise TransientError(f"{self.url} sent a body that is not a chat completion: {_snippet(raw)}") from None
        usage = data.get("usage") or {}
        return Generation(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0))


class PermanentError(Exception):
    """Not retried now; `retryable` says whether a later run should ask again."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


def _snippet(raw: bytes, n: int = 200) -> str:
    return raw[:n].decode("utf-8", errors="replace").replace("\n", " ")


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    value = e.headers.get("Retry-After") if e.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
