"""The filter's fast paths give exactly what the plain definitions give: repeated n-gram shares that look
only where a smaller n-gram repeated, a letter count that stops early, and mojibake's shortcut for ASCII
text (read off ftfy's regex itself, so an ftfy update that breaks it fails here)."""

from __future__ import annotations

import re
from collections import Counter
from re import _parser

from ftfy.badness import BADNESS_RE, is_bad
from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.quality import langid, signals

# ---------------------------------------------------------------- the plain definitions, one n at a time


def plain_top(ws: list[str], n: int) -> float:
    if len(ws) < n:
        return 0.0
    grams = Counter(tuple(ws[i:i + n]) for i in range(len(ws) - n + 1))
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return min(1.0, count * sum(len(w) for w in gram) / max(1, sum(len(w) for w in ws)))


def plain_dup(ws: list[str], n: int) -> float:
    if len(ws) < n:
        return 0.0
    starts: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(ws) - n + 1):
        starts.setdefault(tuple(ws[i:i + n]), []).append(i)
    covered = [False] * len(ws)
    for positions in starts.values():
        if len(positions) > 1:
            for i in positions:
                covered[i:i + n] = [True] * n
    return sum(len(w) for w, c in zip(ws, covered, strict=True) if c) / max(1, sum(len(w) for w in ws))


def plain_repetition(text: str) -> dict[str, float]:
    text = signals.without_code(text)
    ws = signals.words(text)
    out = dict.fromkeys(signals.GOPHER, 0.0)
    if len(ws) < signals.REPETITION_MIN_WORDS:
        return out
    out["dup_line"], out["dup_line_chars"] = signals.duplicate_lines(text)
    out.update({f"top_{n}gram": plain_top(ws, n) for n in signals.GOPHER_TOP_NGRAM})
    out.update({f"dup_{n}gram": plain_dup(ws, n) for n in signals.GOPHER_DUP_NGRAM})
    return out


# Few distinct words, and runs of a repeated phrase with a word changed here and there: n-grams repeat at
# every length from 2 to 10 and beyond, and stop repeating one word short of a change.
VOCAB = ["a", "bb", "ccc", "dddd", "e", "ff"]
phrase = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=12)


@st.composite
def word_lists(draw) -> list[str]:
    ws: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        unit = draw(phrase)
        for _ in range(draw(st.integers(1, 4))):
            copy = list(unit)
            if draw(st.booleans()):
                copy[draw(st.integers(0, len(copy) - 1))] = draw(st.sampled_from(VOCAB))
            ws += copy
    return ws


@settings(max_examples=400, deadline=None)
@given(word_lists())
def test_shared_passes_give_each_n_its_plain_share(ws):
    ns = tuple(signals.GOPHER_DUP_NGRAM)
    shares = signals.duplicate_ngram_shares(ws, ns)
    assert shares == {n: plain_dup(ws, n) for n in ns}  # the same floats, not just close ones
    assert {n: signals.duplicate_ngram_share(ws, n) for n in range(1, 12)} == \
        {n: plain_dup(ws, n) for n in range(1, 12)}
    chars = sum(len(w) for w in ws)
    assert [signals.top_ngram_share(ws, n, chars) for n in (2, 3, 4)] == [plain_top(ws, n) for n in (2, 3, 4)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(word_lists(), st.sampled_from([" ", ". ", "\n", "\n\n```\n", ", "])), max_size=12))
def test_repetition_equals_its_plain_definition(parts):
    text = "".join(" ".join(ws) + sep for ws, sep in parts)
    assert signals.repetition(text) == plain_repetition(text)


@given(st.text(), st.integers(-2, 30))
def test_has_letters_stops_early_and_agrees_with_counting(text, n):
    assert langid.has_letters(text, n) == (sum(c.isalpha() for c in text) >= n)


# ---------------------------------------------------------------- mojibake's ASCII shortcut


def needs_non_ascii(items) -> bool:
    """Whether every match of this parsed regex sequence holds a character outside ASCII: some item that
    must match once or more matches only such characters."""
    return any(_item_needs_non_ascii(op, av) for op, av in items)


def _item_needs_non_ascii(op, av) -> bool:
    c = _parser
    if op is c.LITERAL:
        return av >= 128
    if op is c.IN:  # a class: every member a non-ASCII literal or range, and not negated
        return all((o is c.LITERAL and a >= 128) or (o is c.RANGE and a[0] >= 128) for o, a in av)
    if op is c.SUBPATTERN:
        return needs_non_ascii(av[-1])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        low, _, body = av
        return low >= 1 and needs_non_ascii(body)
    if op is c.BRANCH:
        return all(needs_non_ascii(b) for b in av[1])
    return False  # anchors, any character, categories, lookarounds, backreferences: no promise


def ascii_matchable_branches(pattern: re.Pattern) -> list[str]:
    """The top-level alternatives of a pattern that some ASCII text might match (all of them when the
    pattern ignores case: a non-ASCII letter such as the Kelvin sign then matches an ASCII one)."""
    parsed = _parser.parse(pattern.pattern, pattern.flags)
    items = list(parsed)
    branches = items[0][1][1] if len(items) == 1 and items[0][0] is _parser.BRANCH else [parsed]
    if pattern.flags & re.IGNORECASE:
        return [str(b) for b in branches]
    return [str(b) for b in branches if not needs_non_ascii(b)]


def test_no_pattern_of_ftfys_badness_regex_can_match_ascii_text():
    assert ascii_matchable_branches(BADNESS_RE) == []
    # the check can fail: an added ASCII alternative, or the same regex ignoring case
    assert len(ascii_matchable_branches(re.compile(BADNESS_RE.pattern + "| [a-z]x", BADNESS_RE.flags))) == 1
    assert ascii_matchable_branches(re.compile(BADNESS_RE.pattern, BADNESS_RE.flags | re.IGNORECASE))
    assert len(ascii_matchable_branches(re.compile("a*[\u00e9]?|\u00e9+"))) == 1  # "a" or "" match the first


@given(st.text())
def test_mojibake_is_ftfys_judgement(text):
    assert signals.mojibake(text) == (bool(text) and is_bad(text))


def test_mojibake_on_text_made_to_be_garbled():
    garbled = "caf\u00e9 cr\u00e8me".encode().decode("latin-1")  # UTF-8 read as Latin-1: "cafÃ© crÃ¨me"
    assert signals.mojibake(garbled) and not signals.mojibake("cafe creme")
