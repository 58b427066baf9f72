import json

import pytest

from instructlake.config import IngestConfig
from instructlake.ingest.formats import CONVERTERS, RecordError, detect
from instructlake.ingest.records import sample_id, validate

CFG = IngestConfig()


def convs(fmt, record, cfg=CFG):
    return [validate(c) + (c,) for c in CONVERTERS[fmt](record, cfg)]


@pytest.mark.parametrize("record,fmt", [
    ({"instruction": "a", "input": "", "output": "b"}, "alpaca"),
    ({"conversations": [{"from": "human", "value": "hi"}]}, "sharegpt"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "openai"),
    ({"instruction": "a", "context": "", "response": "b", "category": "qa"}, "dolly"),
    ({"instruction": "a", "instances": [{"input": "", "output": "b"}]}, "self_instruct"),
    ({"message_tree_id": "t", "prompt": {"text": "q", "role": "prompter", "replies": []}}, "oasst"),
    ({"Instruction": "no output"}, None),
    ([1, 2], None),
])
def test_detect(record, fmt):
    assert detect(record) == fmt


def test_alpaca_joins_input_and_keeps_history_and_extras():
    r = {"instruction": "Translate", "input": "hola", "output": "hello", "system": "be brief",
         "history": [["hi", "hey"]], "dataset": "x"}
    [(system, turns, conv)] = convs("alpaca", r)
    assert system == "be brief"
    assert turns == [("user", "hi"), ("assistant", "hey"), ("user", "Translate\n\nhola"), ("assistant", "hello")]
    assert conv.meta == {"dataset": "x"}


def test_sharegpt_roles_system_and_tools():
    r = {"id": "c1", "tools": "[{\"name\": \"f\"}]", "conversations": [
        {"from": "system", "value": "sys"}, {"from": "human", "value": "q"},
        {"from": "function_call", "value": "{\"name\": \"f\"}"}, {"from": "observation", "value": "{}"},
        {"from": "gpt", "value": "a"}]}
    [(system, turns, conv)] = convs("sharegpt", r)
    assert system == "sys"
    assert [t[0] for t in turns] == ["user", "assistant", "tool", "assistant"]
    assert conv.own_id == "c1" and conv.meta["tools"] == "[{\"name\": \"f\"}]"


def test_openai_tool_calls_kept_as_text_and_content_parts():
    r = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "what time"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": {"name": "now"}}]},
        {"role": "tool", "content": "12:00"},
        {"role": "assistant", "content": "noon"}]}
    [(_, turns, _)] = convs("openai", r)
    assert turns[0] == ("user", "what time")
    assert json.loads(turns[1][1])[0]["function"]["name"] == "now"


def test_dolly_context_and_category():
    [(_, turns, conv)] = convs("dolly", {"instruction": "Q?", "context": "ctx", "response": "A", "category": "open_qa"})
    assert turns == [("user", "Q?\n\nctx"), ("assistant", "A")] and conv.meta == {"category": "open_qa"}


def test_self_instruct_one_sample_per_instance():
    r = {"id": "t1", "instruction": "Sort", "instances": [{"input": "b a", "output": "a b"}, {"input": "d c", "output": "c d"}]}
    out = convs("self_instruct", r)
    assert [c.own_id + c.suffix for _, _, c in out] == ["t1#0", "t1#1"]
    only_first = IngestConfig(self_instruct_all_instances=False)
    assert len(convs("self_instruct", r, only_first)) == 1


def _tree():
    return {"message_tree_id": "T", "prompt": {
        "message_id": "p", "role": "prompter", "text": "Q", "lang": "en", "replies": [
            {"message_id": "a1", "role": "assistant", "text": "second best", "rank": 1, "replies": []},
            {"message_id": "a0", "role": "assistant", "text": "best", "rank": 0, "replies": [
                {"message_id": "p2", "role": "prompter", "text": "follow-up", "replies": []}]},
            {"message_id": "ad", "role": "assistant", "text": "deleted", "rank": 2, "deleted": True, "replies": []},
        ]}}


def test_oasst_best_path_trims_unanswered_prompt():
    [(_, turns, conv)] = convs("oasst", _tree())
    assert turns == [("user", "Q"), ("assistant", "best")]
    assert conv.lang == "en" and conv.own_id == "T"


def test_oasst_all_paths_skips_deleted():
    out = convs("oasst", _tree(), IngestConfig(oasst_paths="all"))
    assert sorted(t[1][1] for _, t, _ in out) == ["best", "second best"]


@pytest.mark.parametrize("fmt,record,reason", [
    ("alpaca", {"instruction": "a"}, "missing_field"),
    ("alpaca", {"instruction": 3, "output": "b"}, "wrong_type"),
    ("alpaca", {"instruction": "a", "output": "   "}, "empty_content"),
    ("sharegpt", {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]}, "role_order"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q2"}]}, "role_order"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}]}, "role_order"),
    ("sharegpt", {"conversations": [{"from": "alien", "value": "q"}]}, "unknown_role"),
    ("sharegpt", {"conversations": "nope"}, "wrong_type"),
    ("openai", {"messages": [{"role": "user"}]}, "missing_field"),
    ("self_instruct", {"instruction": "a", "instances": []}, "empty_content"),
    ("oasst", {"message_tree_id": "t", "prompt": {"role": "prompter", "text": "q", "replies": []}}, "empty_content"),
])
def test_bad_records_raise_record_errors(fmt, record, reason):
    with pytest.raises(RecordError) as e:
        convs(fmt, record)
    assert e.value.reason == reason


def test_sample_id_ignores_light_formatting_but_not_content_or_tools():
    [(s1, t1, _)] = convs("alpaca", {"instruction": "Hi ", "output": "there\r\n"})
    [(s2, t2, _)] = convs("alpaca", {"instruction": "Hi", "output": "there"})
    [(s3, t3, _)] = convs("alpaca", {"instruction": "Hi", "output": "there!"})
    assert sample_id(s1, t1) == sample_id(s2, t2) != sample_id(s3, t3)
    assert sample_id(s2, t2, "[]") == sample_id(s2, t2) != sample_id(s2, t2, '[{"name": "f"}]')
