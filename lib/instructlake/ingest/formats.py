"""Chat formats: detection and conversion of one parsed JSON record into conversations.

Pure Python, no Spark: each converter takes a dict and yields `Conversation`s, or raises `RecordError`
with a short reason code and a detail that names the field. The ingest stage turns a RecordError into a
quarantine row, so nothing here may raise anything else for bad data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("alpaca", "sharegpt", "openai", "dolly", "oasst", "self_instruct")

# Speaker names seen in the wild, lower-cased, mapped to user / assistant / system / tool.
ROLE_ALIASES = {
    "user": "user", "human": "user", "prompter": "user", "instruction": "user", "question": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant",
    "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "claude": "assistant",
    "gpt-4": "assistant", "gpt4": "assistant", "answer": "assistant",
    # a tool call is the assistant speaking; its JSON is kept as the turn's text
    "function_call": "assistant", "tool_call": "assistant",
    "system": "system",
    "observation": "tool", "tool": "tool", "function": "tool", "ipython": "tool", "tool_response": "tool",
}


class RecordError(ValueError):
    """One record cannot become a conversation. `reason` is a stable code; `detail` says what and where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Conversation:
    turns: list[tuple[str, str]]  # (role, content), role in user / assistant / tool
    system: str | None = None
    own_id: str | None = None  # the record's own id, when it has one
    suffix: str = ""  # tells apart several conversations from one record (instance #2, tree path)
    lang: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- detection


def detect(record: Any) -> str | None:
    """The format a parsed record looks like, or None."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if "message_tree_id" in keys or (isinstance(record.get("prompt"), dict) and "replies" in record["prompt"]):
        return "oasst"
    if keys & {"conversations", "conversation"}:
        return "sharegpt"
    if "messages" in keys:
        return "openai"
    if {"instruction", "instances"} <= keys:
        return "self_instruct"
    if {"instruction", "response"} <= keys:
        return "dolly"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    return None


# ---------------------------------------------------------------- helpers


def _text(record: dict, key: str, where: str = "", required: bool = True) -> str | None:
    if key not in record or record[key] is None:
        if required:
            raise RecordError("missing_field", f"field {where}{key!r} is missing")
        return None
    value = record[key]
    if not isinstance(value, str):
        raise RecordError("wrong_type", f"field {where}{key!r} is {type(value).__name__}, expected string")
    return value


def _own_id(record: dict, *keys: str) -> str | None:
    for k in keys:
        v = record.get(k)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) != "":
            return str(v)
    return None


def _meta(record: dict, used: set[str]) -> dict[str, str]:
    """Every field the converter did not use, kept as text so nothing is lost."""
    out = {}
    for k, v in record.items():
        if k in used or v is None:
            continue
        out[str(k)] = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
    return out


def _join(instruction: str, extra: str | None) -> str:
    instruction, extra = instruction.strip(), (extra or "").strip()
    if instruction and extra:
        return f"{instruction}\n\n{extra}"
    return instruction or extra


def _role(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise RecordError("wrong_type", f"{where} speaker is {type(raw).__name__}, expected string")
    role = ROLE_ALIASES.get(raw.strip().lower())
    if role is None:
        raise RecordError("unknown_role", f"{where} has unknown speaker {raw!r}")
    return role


def _content(value: Any, where: str) -> str:
    """Turn content: a string, a list of parts (OpenAI multimodal style; text parts kept), or null."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for p in value:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            else:
                raise RecordError("wrong_type", f"{where} content has a non-text part")
        return "\n".join(parts)
    raise RecordError("wrong_type", f"{where} content is {type(value).__name__}, expected string")


def _turn_list(turns: Any, field_name: str) -> tuple[str | None, list[tuple[str, str]]]:
    """A list of {from,value} or {role,content} dicts -> (system, turns)."""
    if not isinstance(turns, list):
        raise RecordError("wrong_type", f"field {field_name!r} is {type(turns).__name__}, expected list")
    system = None
    out: list[tuple[str, str]] = []
    for i, t in enumerate(turns):
        where = f"{field_name}[{i}]"
        if not isinstance(t, dict):
            raise RecordError("wrong_type", f"{where} is {type(t).__name__}, expected object")
        speaker = t.get("from", t.get("role"))
        if speaker is None:
            raise RecordError("missing_field", f"{where} has no 'from' or 'role'")
        role = _role(speaker, where)
        raw = t.get("value", t.get("content"))
        if raw is None and "value" not in t and "content" not in t and not t.get("tool_calls"):
            raise RecordError("missing_field", f"{where} has no 'value' or 'content'")
        text = _content(raw, where)
        calls = t.get("tool_calls") or t.get("function_call")
        if calls:  # OpenAI tool calls: kept as text after any content
            call_text = json.dumps(calls, ensure_ascii=False, sort_keys=True)
            text = f"{text}\n{call_text}" if text.strip() else call_text
        if role == "system":
            if out or system is not None:
                raise RecordError("role_order", f"{where} is a system turn after the conversation started")
            system = text
            continue
        out.append((role, text))
    return system, out


# ---------------------------------------------------------------- converters


def alpaca(r: dict, cfg) -> Iterator[Conversation]:
    instruction = _text(r, "instruction")
    extra = _text(r, "input", required=False)
    output = _text(r, "output")
    system = _text(r, "system", required=False)
    turns: list[tuple[str, str]] = []
    history = r.get("history")
    if history is not None:
        if not isinstance(history, list):
            raise RecordError("wrong_type", "field 'history' must be a list of [instruction, response] pairs")
        for i, pair in enumerate(history):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise RecordError("wrong_type", f"history[{i}] must be a pair of strings")
            turns += [("user", pair[0]), ("assistant", pair[1])]
    turns += [("user", _join(instruction, extra)), ("assistant", output)]
    yield Conversation(turns, system=system, own_id=_own_id(r, "id", "idx"),
                       meta=_meta(r, {"instruction", "input", "output", "system", "history", "id", "idx"}))


def sharegpt(r: dict, cfg) -> Iterator[Conversation]:
    key = "conversations" if "conversations" in r else "conversation"
    if key not in r:
        raise RecordError("missing_field", "field 'conversations' is missing")
    system, turns = _turn_list(r[key], key)
    top_system = _text(r, "system", required=False)
    if top_system and system:
        raise RecordError("role_order", "both a 'system' field and a system turn")
    yield Conversation(turns, system=top_system or system, own_id=_own_id(r, "id", "conversation_id"),
                       lang=r.get("lang") if isinstance(r.get("lang"), str) else None,
                       meta=_meta(r, {key, "system", "id", "conversation_id", "lang"}))


def openai(r: dict, cfg) -> Iterator[Conversation]:
    if "messages" not in r:
        raise RecordError("missing_field", "field 'messages' is missing")
    system, turns = _turn_list(r["messages"], "messages")
    yield Conversation(turns, system=system, own_id=_own_id(r, "id"),
                       meta=_meta(r, {"messages", "id"}))


def dolly(r: dict, cfg) -> Iterator[Conversation]:
    instruction = _text(r, "instruction")
    context = _text(r, "context", required=False)
    response = _text(r, "response")
    yield Conversation([("user", _join(instruction, context)), ("assistant", response)],
                       own_id=_own_id(r, "id"), meta=_meta(r, {"instruction", "context", "response", "id"}))


def self_instruct(r: dict, cfg) -> Iterator[Conversation]:
    instruction = _text(r, "instruction")
    instances = r.get("instances")
    if not isinstance(instances, list):
        raise RecordError("wrong_type", "field 'instances' must be a list of {input, output}")
    if not instances:
        raise RecordError("empty_content", "field 'instances' is empty: no response to learn from")
    if not cfg.self_instruct_all_instances:
        instances = instances[:1]
    meta = _meta(r, {"instruction", "instances", "id"})
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise RecordError("wrong_type", f"instances[{i}] is {type(inst).__name__}, expected object")
        extra = _text(inst, "input", f"instances[{i}].", required=False)
        output = _text(inst, "output", f"instances[{i}].")
        yield Conversation([("user", _join(instruction, extra)), ("assistant", output)],
                           own_id=_own_id(r, "id"), suffix=f"#{i}" if len(instances) > 1 else "", meta=meta)


def oasst(r: dict, cfg) -> Iterator[Conversation]:
    root = r.get("prompt")
    if not isinstance(root, dict):
        raise RecordError("missing_field", "field 'prompt' (the tree's root message) is missing")
    tree_id = _own_id(r, "message_tree_id") or _own_id(root, "message_id")
    paths = list(_oasst_paths(root, cfg)) if cfg.oasst_paths == "all" else [_oasst_best(root, cfg)]
    seen: set[tuple] = set()
    for nodes in paths:
        # A path ending on an unanswered prompt is cut back to its last assistant reply.
        while nodes and nodes[-1].get("role") != "assistant":
            nodes = nodes[:-1]
        key = tuple(id(n) for n in nodes)
        if not nodes or key in seen:
            continue
        seen.add(key)
        turns = []
        for depth, n in enumerate(nodes):
            role = _role(n.get("role"), f"message at depth {depth}")
            turns.append((role, _text(n, "text", f"message at depth {depth}: ")))
        leaf = _own_id(nodes[-1], "message_id") or str(len(nodes))
        meta = {"tree_state": str(r.get("tree_state", ""))}
        if any(n.get("synthetic") for n in nodes):
            meta["synthetic"] = "true"
        yield Conversation(turns, own_id=tree_id, suffix=f"/{leaf}" if cfg.oasst_paths == "all" else "",
                           lang=root.get("lang") if isinstance(root.get("lang"), str) else None, meta=meta)
    if not seen:
        raise RecordError("empty_content", "the tree has no assistant reply to its prompt")


def _oasst_children(node: dict, cfg) -> list[dict]:
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise RecordError("wrong_type", "a message's 'replies' is not a list")
    out = []
    for c in replies:
        if not isinstance(c, dict):
            raise RecordError("wrong_type", "a reply is not an object")
        if c.get("deleted") or (cfg.oasst_skip_synthetic and c.get("synthetic")):
            continue
        out.append(c)
    return out


def _oasst_best(root: dict, cfg) -> list[dict]:
    """Follow the best-ranked reply (rank 0 first; unranked after ranked, in file order)."""
    path, node = [root], root
    while True:
        kids = _oasst_children(node, cfg)
        if not kids:
            return path
        ranked = sorted(enumerate(kids), key=lambda ik: (
            not isinstance(ik[1].get("rank"), int), ik[1].get("rank") if isinstance(ik[1].get("rank"), int) else 0,
            ik[0]))
        node = ranked[0][1]
        path.append(node)


def _oasst_paths(root: dict, cfg) -> Iterator[list[dict]]:
    stack = [[root]]
    while stack:
        path = stack.pop()
        kids = _oasst_children(path[-1], cfg)
        if not kids:
            yield path
        for k in reversed(kids):
            stack.append(path + [k])


CONVERTERS: dict[str, Callable[[dict, Any], Iterator[Conversation]]] = {
    "alpaca": alpaca, "sharegpt": sharegpt, "openai": openai, "dolly": dolly,
    "oasst": oasst, "self_instruct": self_instruct,
}
