"""normalize's compiled passes against the Arrow calls they stand for: collapse (kernels.collapse_separators)
against the punctuation pattern and utf8_trim_whitespace, and the words read before collapse
(minhash.text_words, kernels.words_between) against the words of the normalized text. Stored signatures
were computed the Arrow way, so every value must be the same."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.dedup import minhash
from instructlake.dedup.minhash import (
    PUNCTUATION_RUNS,
    SEPARATOR,
    TABLE_END,
    TEMPLATE_PATTERNS,
    MinHasher,
    collapse,
    normalize,
    shingle_sets,
    strip_templates,
    text_shingle_sets,
    text_words,
)


def regex_collapse(texts: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(texts, PUNCTUATION_RUNS, " "))


# every whitespace Arrow splits or trims on and RE2's \s, punctuation and symbols of several planes, letters
# (ASCII, accented, CJK, an emoji, a combining mark), format and private-use characters beyond them, and
# templates
PIECES = ["\t", "\n", "\r", "\f", "\v", " ", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u2000", "\u200a",
          "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b", "\ufeff", "\x00",
          *".,!?;:'\"()[]{}<>#*-_/\\|@$%^&+=~`", "€", "。", "「", "・", "⺀", "\U0001f600", "\U0001d7ce",
          "a", "Z", "é", "ß", "日", "本", "カ", "\u0301", "ﬁ", "①", "\U000e0041", "\U000f0000", "\U0010fffd",
          "### Instruction:", "[INST]", "<|im_end|>", "Below is an instruction"]
TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=20), st.sampled_from([pa.string(), pa.large_string()]),
       st.integers(0, 3))
def test_collapse_equals_the_pattern_and_trim_it_replaces(texts, kind, skip):
    arr = pa.array(texts, kind).slice(min(skip, len(texts)))
    got = collapse(arr)
    assert got.type == arr.type
    assert got.to_pylist() == regex_collapse(arr).to_pylist()


def test_the_tables_are_asked_of_every_code_point_below_their_end_each_alone():
    points, chars = minhash._code_points()
    expected = [cp for cp in range(TABLE_END) if not 0xD800 <= cp < 0xE000]
    assert points.tolist() == expected
    assert chars.to_pylist() == [chr(cp) for cp in expected]


def test_no_code_point_past_the_tables_separates_trims_or_splits():
    """The tables stop at TABLE_END: Arrow is asked of every code point past it."""
    chars = pa.array([chr(cp) for cp in range(TABLE_END, 0x110000)], pa.string())
    assert not pc.any(pc.match_substring_regex(chars, SEPARATOR)).as_py()
    assert pc.all(pc.equal(pc.utf8_trim_whitespace(chars), chars)).as_py()
    inner = pc.binary_join_element_wise("a", chars, "b", "")
    assert pc.all(pc.equal(pc.list_value_length(pc.utf8_split_whitespace(inner)), 1)).as_py()


def test_this_arrow_lets_words_be_read_before_collapse():
    """If a new Arrow trimmed or split differently, text_words would take the long way; this says so."""
    assert minhash.word_breaks() is not None


def assert_same_words(texts: pa.Array, templates: bool, seed: int = 42) -> None:
    hasher = MinHasher(seed=seed)
    want = hasher._words(normalize(texts, templates))
    for got, expected in zip(text_words(texts, templates, seed), want, strict=True):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(hasher.sketch_texts(texts, templates), hasher.sketch(normalize(texts, templates)),
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(text_shingle_sets(hasher, texts, templates),
                             shingle_sets(hasher, normalize(texts, templates)), strict=True):
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXTS | st.none(), min_size=1, max_size=20), st.booleans(), st.integers(0, 1000))
def test_words_read_before_collapse_are_the_words_of_the_normalized_text(texts, templates, seed):
    assert_same_words(pa.array(texts, pa.string()), templates, seed)


@pytest.mark.parametrize("texts", [pa.array([], pa.string()), pa.array(["skip", "a b", " c, d! "]).slice(1),
                                   pa.chunked_array([["a b", None], ["", "日本語 x"]]),
                                   pa.array(["one " * 4000 + "end", "x"], pa.large_string())])
def test_words_read_before_collapse_from_empty_sliced_chunked_and_long_arrays(texts):
    assert_same_words(texts, True)


def test_the_long_way_when_arrows_tables_forbid_the_short_one(monkeypatch):
    """A double of word_breaks answering None (what an Arrow that trims otherwise gives): the words
    come from the normalized text, the same as before."""
    monkeypatch.setattr(minhash, "word_breaks", lambda: None)
    assert_same_words(pa.array(["Hello, world!  A test.", "", "x\u2028y"]), True)


@pytest.mark.parametrize("table, point", [("trim", 0x41), ("spaces", 0x41)])
def test_word_breaks_refuse_tables_that_trim_or_split_inside_words(monkeypatch, table, point):
    """A trimmed or split code point that is no break would make words differ at the ends: refused."""
    separator, trim = minhash.separator_tables()
    spaces = minhash.split_spaces().copy()
    trim = trim.copy()
    (trim if table == "trim" else spaces)[point] = True
    monkeypatch.setattr(minhash, "separator_tables", lambda: (separator, trim))
    monkeypatch.setattr(minhash, "split_spaces", lambda: spaces)
    assert minhash.word_breaks.__wrapped__() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.lists(st.sampled_from(["### Response:", "###", " instruction", ":", "[INST]",
                                                    "[/inst]", "<s>", "</s>", "<<SYS>>", "<|im_start|>user",
                                                    "Below is an instruction that describes a task. Write a "
                                                    "response that appropriately completes the request.",
                                                    "x", " "]), max_size=8).map("".join), TEXTS, st.none()),
                min_size=1, max_size=20))
def test_templates_stripped_in_the_rows_they_match_as_by_every_row_replaced(texts):
    arr = pa.array(texts, pa.string())
    want = arr
    for pattern in TEMPLATE_PATTERNS:
        want = pc.replace_substring_regex(want, pattern, " ")
    assert strip_templates(arr).to_pylist() == want.to_pylist()
