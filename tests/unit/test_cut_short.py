"""jsontext.cut_short tells the text a cut file leaves of its last record (valid JSON up to its end) from
damaged text, which the scanner then resynchronises after."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.jsontext import cut_short

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
)
CONTAINERS = st.lists(VALUES, max_size=5) | st.dictionaries(st.text(max_size=5), VALUES, max_size=5)


@settings(max_examples=200, deadline=None)
@given(value=CONTAINERS, indent=st.sampled_from([None, 0, 2, "\t"]), ascii_only=st.booleans())
def test_every_cut_of_a_record_is_cut_short_and_the_whole_record_is_not(value, indent, ascii_only):
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert not cut_short(text)
    for i in range(1, len(text)):
        assert cut_short(text[:i]), repr(text[:i])
        # a control character is JSON nowhere (strings included): the text stops being a prefix there
        assert not cut_short(text[:i] + "\x01"), repr(text[:i])


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, {"b": 2}',  # a record where a key belongs: a lost closing brace
        '{"a": "x\n{"b": 2}',  # a raw line break in a string: a lost quote
        '{"a": [{"b": 1}]\n, {"c": 2}',
        '[1, 2}',  # a bracket that closes the wrong thing
        '{"a" 1',
        '{"a": tx',
        '{"a": 12x',
        '{"a": "\\x',  # not an escape
        '{"a": "\\u12zz',
        '[1, 2]]',  # a whole value and more
    ],
)
def test_damage_is_not_a_cut(text):
    assert not cut_short(text)


def test_a_cut_inside_a_token_is_a_cut():
    cuts = ["[tr", "[fals", "[nul", "[-", "[1.", "[1e", "[1e+", '{"a": "\\', '{"a": "\\u00', '["\\ud83d\\u']
    for text in cuts:
        assert cut_short(text), text
