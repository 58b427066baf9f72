"""jsontext.compact_dumps writes what json.dumps writes (the bytes, or the error) for any strings, lists
and dicts, so sample ids, which hash it, do not move."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.ingest.records import sample_id
from instructlake.jsontext import compact_dumps

# any string, lone surrogates included (JSON escapes can make them)
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


def outcome(write, value):
    """(what write(value) gives, or the error's type)."""
    try:
        return "ok", repr(write(value))
    except (ValueError, RecursionError) as e:
        return "error", type(e).__name__


def reference_id(system, turns, tools=None):
    """sample_id as it was first written, with json.dumps."""
    parts: list = [system or "", [[r, c] for r, c in turns]]
    if tools and tools.strip() not in ("", "[]", "{}"):
        parts.append(tools.strip())
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.none(), TEXT), st.lists(st.tuples(st.sampled_from(["user", "assistant", "tool"]), TEXT),
                                             max_size=4), st.one_of(st.none(), TEXT))
def test_sample_ids_are_what_json_dumps_gave(system, turns, tools):
    assert outcome(lambda _: sample_id(system, turns, tools), None) == outcome(
        lambda _: reference_id(system, turns, tools), None)


def test_a_known_sample_id_stays():
    turns = [("user", 'Say "hi"\n\ttwice'), ("assistant", "hi hi \u2713")]
    assert sample_id("Be brief.", turns) == reference_id("Be brief.", turns)
    assert sample_id("Be brief.", turns) == "97c26feb44de4ba5254db44e5eade05c"


@settings(max_examples=300, deadline=None)
@given(st.recursive(TEXT, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(TEXT, inner, max_size=3)), max_leaves=10))
def test_compact_dumps_writes_json_s_bytes_for_strings_lists_and_dicts(value):
    def reference(v):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    assert outcome(compact_dumps, value) == outcome(reference, value)
