"""Structured output: parse an answer as JSON, repair the common defects, validate it against the task's
JSON schema, and re-ask the model with the error when that fails.

Repairs, in order: code fences, prose around the JSON, raw control characters in strings, trailing commas,
Python literals (True/None), and an object that merely wraps the expected array ({"tags": [...]}). A prompt
whose answer still fails after `max_reasks` re-asks comes back with `error` set; nothing here raises on a
bad answer: an answer nested deeper than MAX_DEPTH is invalid like any other, and lone surrogates (from
escapes such as "\\ud83d", which no Arrow or Delta column can hold) become U+FFFD in the text and the value.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instructlake.jsontext import loads as bounded_loads
from instructlake.jsontext import scrub_surrogates, scrub_text
from instructlake.llm.engine import Engine, Messages, SamplingParams

# No task's answer nests this deep; deeper is a broken answer, not a reason to recurse.
MAX_DEPTH = 64

REASK = ("Your answer could not be used: {error}. Reply again with only the JSON the instructions ask "
         "for, no code fences and no other text.")


@dataclass
class Outcome:
    text: str = ""  # the last raw answer
    value: Any = None  # the parsed, valid JSON (None when `error` is set)
    error: str | None = None  # why there is no valid value: a parse/schema error or a backend failure
    transport_error: bool = False  # the backend gave no answer at all (not cached: a re-run tries again)
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


def _candidates(text: str) -> list[str]:
    """Substrings of an answer that may be its JSON, most likely first."""
    out = [text.strip()]
    out += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_, close in (("[", "]"), ("{", "}")):
        i, j = text.find(open_), text.rfind(close)
        if 0 <= i < j:
            out.append(text[i:j + 1])
    return out


def _loads(s: str) -> Any:
    try:
        return bounded_loads(s, MAX_DEPTH)
    except ValueError:
        pass
    try:  # raw newlines or tabs inside strings, which models (and xgrammar's JSON grammar) let through
        return bounded_loads(s, MAX_DEPTH, strict=False)
    except ValueError:
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", s)
    fixed = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", re.sub(r"\bNone\b", "null", fixed)))
    return bounded_loads(fixed, MAX_DEPTH, strict=False)


def parse(text: str, schema: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(value, None) for a usable answer, else (None, a short reason)."""
    json_error, schema_error = "no JSON found in the answer", None
    for cand in _candidates(text):
        try:
            value = scrub_surrogates(_loads(cand))
        except ValueError as e:
            if cand[:1] in "[{":  # prose is "no JSON found", not a JSON syntax error
                json_error = f"invalid JSON ({e})"
            continue
        if schema is None:
            return value, None
        err = validate(value, schema)
        if err and schema.get("type") == "array" and isinstance(value, dict) and len(value) == 1:
            inner = next(iter(value.values()))  # {"tags": [...]} where a bare array was asked for
            if validate(inner, schema) is None:
                return inner, None
        if err is None:
            return value, None
        # the first JSON that parsed is the answer the model meant: report its problem
        schema_error = schema_error or f"does not match the schema: {err}"
    return None, schema_error or json_error


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str):
    """A checked validator per schema: jsonschema.validate checks the schema itself on every call, which
    cost most of the time of parsing an answer."""
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate(value: Any, schema: dict[str, Any]) -> str | None:
    import jsonschema

    e = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(value))
    if e is None:
        return None
    where = "/".join(str(p) for p in e.absolute_path) or "the top level"
    return f"{e.message} at {where}"


def generate_json(engine: Engine, prompts: Sequence[Messages], params: SamplingParams,
                  schema: dict[str, Any] | None, max_reasks: int) -> list[Outcome]:
    """Ask every prompt, re-ask the ones whose answers are unusable, and report each one's outcome."""
    outcomes = [Outcome() for _ in prompts]
    convs = [list(m) for m in prompts]
    todo = list(range(len(prompts)))
    for round_ in range(max_reasks + 1):
        if not todo:
            break
        gens = engine.generate([convs[i] for i in todo], params)
        if len(gens) != len(todo):
            raise RuntimeError(f"engine {engine.backend} returned {len(gens)} answers for {len(todo)} prompts")
        again = []
        for i, g in zip(todo, gens, strict=True):
            o = outcomes[i]
            o.attempts += 1
            o.prompt_tokens += g.prompt_tokens
            o.completion_tokens += g.completion_tokens
            if g.error is not None and not g.retryable:
                o.error, o.transport_error, o.value = f"not answered: {g.error}", False, None
                continue
            if g.error is not None:
                o.error, o.transport_error, o.value = f"backend: {g.error}", True, None
                continue
            o.text = scrub_text(g.text)
            o.value, o.error = parse(o.text, schema)
            o.transport_error = False
            if o.error is not None and round_ < max_reasks:
                convs[i] = convs[i] + [{"role": "assistant", "content": g.text},
                                       {"role": "user", "content": REASK.format(error=o.error)}]
                again.append(i)
        todo = again
    return outcomes
