"""Open tags: the instruction's intent and knowledge phrases (tagging/open_tags.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.tagging.open_tags import GENERIC, STOP, open_tags, singular


@pytest.mark.parametrize("text, tags", [
    ("Write a short poem about the sea at night.", ["poem writing", "sea", "night"]),
    ("Provide a brief overview of the French Revolution.", ["french revolution"]),
    ("Give me two examples of renewable energy sources.", ["renewable energy source"]),
    ("Translate this into French", ["text translation", "french"]),
    ("Sort the following list of names alphabetically.", ["name sorting"]),
    ("Create a survey question to measure customer satisfaction",
     ["survey creation", "customer satisfaction"]),
    ("please summarize the book 1984.", ["book summarization"]),
])
def test_intent_then_phrases(text, tags):
    assert open_tags(text) == tags


def test_longer_phrases_first_and_the_bound():
    text = "Compare the economy of Japan with the economy of South Korea in the cold war era."
    assert open_tags(text) == ["economy comparison", "south korea", "cold war era", "japan"]
    assert open_tags(text, max_phrases=1) == ["economy comparison", "south korea"]
    assert open_tags(text, max_phrases=0, with_intent=False) == []
    assert open_tags(text, with_intent=False)[0] == "south korea"


def test_only_the_head_of_a_long_instruction_counts():
    text = "Summarize this article. " + "x " * 200 + "quantum chromodynamics"
    assert "quantum chromodynamics" not in open_tags(text)


@pytest.mark.parametrize("word, one", [("sources", "source"), ("stories", "story"), ("boxes", "box"),
                                       ("class", "class"), ("physics", "physics"), ("news", "news"),
                                       ("data", "data"), ("bus", "bus")])
def test_singular(word, one):
    assert singular(word) == one


@pytest.mark.parametrize("text", [None, "", "   ", "?!", "the of and", "12345", "你好世界", "SECONDS",
                                  "Steps and seconds"])
def test_no_words_no_tags(text):
    assert open_tags(text) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=0, max_value=5))
def test_any_text_gives_distinct_clean_bounded_tags(text, k):
    tags = open_tags(text, max_phrases=k)
    assert len(tags) == len(set(tags)) <= k + 1
    for t in tags:
        ws = t.split(" ")
        assert t == t.strip().lower() and all(ws) and len(ws) <= 3 and ws[0] not in STOP
    for t in open_tags(text, max_phrases=k, with_intent=False):  # an intent may end in "description"
        assert t.split(" ")[-1] not in GENERIC
