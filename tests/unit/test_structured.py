"""Structured output: JSON repair, schema validation, re-asks; prompt files and their versions."""

from __future__ import annotations

import json

import pytest

from instructlake.llm import prompts
from instructlake.llm.engine import SamplingParams
from instructlake.llm.scripted import ScriptedEngineDouble
from instructlake.llm.structured import generate_json, parse

SCHEMA = prompts.load("tag_instruction").schema
GOOD = [{"tag": "algebra", "explanation": "solving for x"}]


@pytest.mark.parametrize("text", [
    json.dumps(GOOD),
    "```json\n" + json.dumps(GOOD) + "\n```",
    "Here you go:\n" + json.dumps(GOOD) + "\nLet me know if you need more.",
    '[{"tag": "algebra", "explanation": "solving for x",},]',
    "Sure!\n```\n[{'tag': 'algebra'}]\n```".replace("'", '"').replace('}]', ', "explanation": "solving for '
                                                                            'x"}]'),
    json.dumps({"tags": GOOD}),  # an object wrapping the array that was asked for
])
def test_repairs_common_defects(text):
    value, err = parse(text, SCHEMA)
    assert err is None, err
    assert value == GOOD


def test_raw_control_characters_in_strings_are_kept():
    # models (and xgrammar's JSON grammar) let raw newlines and tabs into strings; strict JSON refuses them
    value, err = parse('{"response": "line one\nline\ttwo"}', {"type": "object", "required": ["response"]})
    assert err is None and value == {"response": "line one\nline\ttwo"}


def test_python_literals_are_repaired():
    value, err = parse('{"valid": True, "reason": None}', {"type": "object", "required": ["valid"]})
    assert err is None and value == {"valid": True, "reason": None}


@pytest.mark.parametrize("text, why", [
    ("I think it is about algebra.", "JSON"),
    ("[]", "schema"),  # minItems 1
    ('[{"tag": "algebra"}]', "explanation"),  # required field missing
    ('[{"tag": 3, "explanation": "x"}]', "schema"),
])
def test_unusable_answers_name_the_problem(text, why):
    value, err = parse(text, SCHEMA)
    assert value is None
    assert why in err


def test_generate_json_repairs_reasks_and_fails_as_rows():
    engine = ScriptedEngineDouble()
    prompt = prompts.load("tag_instruction")
    msgs = [prompt.render(instruction=t) for t in (
        "Write a Python function", "[[malformed]] write a poem", "[[garbage]] calculate 2+2", "[[backend-down]] hi")]
    outs = generate_json(engine, msgs, SamplingParams(), prompt.schema, max_reasks=2)
    assert [o.error is None for o in outs] == [True, True, True, False]
    assert {t["tag"] for t in outs[0].value} == {"programming", "python programming"}
    assert outs[1].attempts == 1  # repaired, not re-asked
    assert outs[2].attempts == 2 and outs[2].value[0]["tag"] == "arithmetic"  # re-asked once
    assert outs[3].transport_error and "backend" in outs[3].error
    assert engine.calls == 4 + 1  # 4 asks and 1 re-ask; a backend failure is not re-asked (backends retry)

    prose = ScriptedEngineDouble("instructlake.llm.scripted:always_prose")
    out = generate_json(prose, msgs[:1], SamplingParams(), prompt.schema, max_reasks=2)[0]
    assert out.value is None and "JSON" in out.error and out.attempts == 3 and not out.transport_error


def test_prompt_version_tracks_the_file_and_render_fills_placeholders():
    p = prompts.load("tag_instruction")
    assert p.version.startswith("tag_instruction/v1-") and len(p.version.split("-")[-1]) == 8
    msgs = p.render(instruction="Add {braces} and 2+2")
    assert msgs[0]["role"] == "system" and "Add {braces} and 2+2" in msgs[1]["content"]
    with pytest.raises(prompts.PromptError, match="instruction"):
        p.render()
    with pytest.raises(prompts.PromptError, match="tag_instruction"):
        prompts.load("no_such_prompt")


@pytest.mark.parametrize("answer", ["[" * 1000, '{"a": ' * 5000 + "1" + "}" * 5000, "[" * 100_000 + "]" * 100_000])
def test_an_answer_nested_too_deep_is_invalid_not_a_crash(answer):
    value, err = parse(answer, {"type": "array"})
    assert value is None and err


def test_lone_surrogate_escapes_are_replaced_so_rows_can_be_written():
    import pyarrow as pa

    value, err = parse('{"response": "\\ud83d", "tags": ["\\udc00ok"]}', {"type": "object"})
    assert err is None and value == {"response": "\ufffd", "tags": ["\ufffdok"]}
    pa.array([value["response"], value["tags"][0]])
