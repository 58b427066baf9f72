"""Quality signals of a sample's text: one small named function per signal, each pure Python, so the
filter stage computes them in its Python workers and a test can check each on its own.

Repetition follows the Gopher rules (Rae et al. 2021, table A1): the share of lines that repeat an
earlier line and the characters they hold, the characters covered by the most common 2-, 3- and 4-gram,
and the characters covered by repeated 5- to 10-grams. They mean little on a short answer, so they are
measured on texts of at least REPETITION_MIN_WORDS words only. Refusal and AI-disclaimer phrases are a
versioned list. VERSION names this module's rules and lists: it is part of the filter stage's hash, so a
changed rule or list judges every sample again. Mojibake is
ftfy's `is_bad` (text that decoding in the wrong codec garbled, such as "Ã©" for "é").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence

# Gopher's thresholds for web documents, for reference: every repetition measure by name
GOPHER_TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}
GOPHER_DUP_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
GOPHER = {"dup_line": 0.30, "dup_line_chars": 0.20,
          **{f"top_{n}gram": v for n, v in GOPHER_TOP_NGRAM.items()},
          **{f"dup_{n}gram": v for n, v in GOPHER_DUP_NGRAM.items()}}
REPETITION_MIN_WORDS = 50

# Raise it with any change to a rule or list here (or in langid): the filter judges every sample again.
VERSION = "1"
# lower case; matched as substrings of the lower-cased answer with typographic apostrophes made plain
REFUSALS = (
    "as an ai language model", "as an ai assistant, i cannot", "as an ai, i cannot", "as an ai, i do not",
    "as an ai, i don't", "as a language model, i", "as a large language model", "i'm just an ai",
    "i am just an ai", "i'm sorry, but i cannot", "i'm sorry, but i can't", "i am sorry, but i cannot",
    "i cannot fulfill", "i can't fulfill", "i cannot comply", "i can't comply", "i can't assist with",
    "i cannot assist with", "i'm not able to provide", "i am not able to provide", "i'm unable to provide",
    "i am unable to provide", "i don't have personal opinions", "i do not have personal opinions",
    "i don't have personal feelings", "i do not have personal feelings", "i don't have the ability to",
    "i do not have the ability to", "my knowledge cutoff", "my training data only goes",
    "it is not appropriate for me to", "it's not appropriate for me to", "i must decline",
    "against my programming", "openai's content policy", "openai's use case policy",
)

_WORD = re.compile(r"\w+", re.UNICODE)
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_FENCED = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.MULTILINE | re.S)
_LABEL = re.compile(r"^(\w+[ .]?){1,4}:\s")
_SENTENCE_INSIDE = re.compile(r"[.!?] +[A-Z]")
_BARE_END = re.compile(r"\s[a-z]+$")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def duplicate_lines(text: str) -> tuple[float, float]:
    """(share of the non-blank lines that repeat an earlier line, share of the characters in them)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return 0.0, 0.0
    seen: set[str] = set()
    dup = dup_chars = 0
    for ln in lines:
        if ln in seen:
            dup += 1
            dup_chars += len(ln)
        seen.add(ln)
    return dup / len(lines), dup_chars / max(1, sum(len(ln) for ln in lines))


def ngrams(ws: list[str], n: int) -> Iterator[tuple[str, ...]]:
    """The words' n-grams in order, as tuples built in C (zip stops with its shortest slice, at the last
    n-gram)."""
    return zip(*(ws[k:] for k in range(n)), strict=False)


def top_ngram_share(ws: list[str], n: int, chars: int | None = None) -> float:
    """Share of the words' characters covered by the most common n-gram's occurrences (Gopher); `chars`:
    the words' characters, when the caller has counted them already."""
    if len(ws) < n:
        return 0.0
    grams = Counter(ngrams(ws, n))
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    total = sum(len(w) for w in ws) if chars is None else chars
    return min(1.0, count * sum(len(w) for w in gram) / max(1, total))


def duplicate_ngram_share(ws: list[str], n: int) -> float:
    """Share of the words' characters inside n-grams that occur more than once (Gopher), each word
    counted once however many repeated n-grams cover it."""
    return duplicate_ngram_shares(ws, (n,))[n]


def duplicate_ngram_shares(ws: list[str], ns: Sequence[int]) -> dict[int, float]:
    """duplicate_ngram_share for each n in ns, in one pass over the words and short ones after it.

    An n-gram that occurs twice starts with a smaller m-gram that occurs twice at the same places, so each
    larger n looks only at the places where the one before it repeated: usually none, and then the larger
    n-grams cost nothing (they were 40% of the filter's time when each n looked at every word)."""
    lengths = [len(w) for w in ws]
    total = max(1, sum(lengths))
    out: dict[int, float] = {}
    starts: list[int] | None = None  # None: every place
    for n in sorted(ns):
        starts = _repeated_starts(ws, n, starts)
        out[n] = _covered_chars(lengths, starts, n) / total
    return out


def _repeated_starts(ws: list[str], n: int, starts: list[int] | None) -> list[int]:
    """The places, in order, of the n-grams that occur more than once, looked for at `starts` only
    (None: at every place)."""
    if starts is None:
        grams = list(ngrams(ws, n))
        counts = Counter(grams)
        if len(counts) == len(grams):  # no n-gram twice, the common case: decided without a Python loop
            return []
        return [i for i, gram in enumerate(grams) if counts[gram] > 1]
    places: dict[tuple[str, ...], list[int]] = {}
    for i in starts:
        if i + n <= len(ws):
            places.setdefault(tuple(ws[i:i + n]), []).append(i)
    return sorted(i for found in places.values() if len(found) > 1 for i in found)


def _covered_chars(lengths: list[int], starts: Sequence[int], n: int) -> int:
    """The characters of the words that the n-grams at `starts` cover, each word once."""
    if not starts:
        return 0
    covered = [False] * len(lengths)
    for i in starts:
        covered[i:i + n] = [True] * n
    return sum(k for k, c in zip(lengths, covered, strict=True) if c)


def without_code(text: str) -> str:
    """The text with its fenced code blocks taken out: code repeats itself by nature (loops, similar lines)
    and is not what a loop in an answer looks like."""
    return _FENCED.sub("\n", text)


def repetition(text: str) -> dict[str, float]:
    """Every Gopher repetition measure of a text's prose (code blocks left out), by name; all 0 under
    REPETITION_MIN_WORDS words."""
    text = without_code(text)
    ws = words(text)
    out = dict.fromkeys(GOPHER, 0.0)
    if len(ws) < REPETITION_MIN_WORDS:
        return out
    out["dup_line"], out["dup_line_chars"] = duplicate_lines(text)
    chars = sum(len(w) for w in ws)
    out.update({f"top_{n}gram": top_ngram_share(ws, n, chars) for n in GOPHER_TOP_NGRAM})
    shares = duplicate_ngram_shares(ws, tuple(GOPHER_DUP_NGRAM))
    out.update({f"dup_{n}gram": share for n, share in shares.items()})
    return out


def refusal(text: str) -> str | None:
    """The first refusal or AI-disclaimer phrase in an answer, or None."""
    low = text.lower().replace("\u2019", "'")
    return next((p for p in REFUSALS if p in low), None)


def unbalanced_fences(text: str) -> bool:
    """An odd number of code-fence lines: the answer opened a code block and never closed it."""
    return len(_FENCE.findall(text)) % 2 == 1


def ends_mid_sentence(text: str, min_chars: int = 200) -> bool:
    """A long answer whose last line is a prose paragraph (a sentence already ended inside it) that stops
    on a bare lower-case word ("...and then the"). Short answers ("Paris"), poems and lyrics (lines without
    sentence marks), lists, tables, hashtags, code and numbers may end bare."""
    body = text.rstrip()
    if len(body) < min_chars or unbalanced_fences(body):
        return False
    last = body.splitlines()[-1].strip()
    if re.match(r"^([-*+•]|\d|#|\|)", last) or _LABEL.match(last) or len(words(last)) < 12:
        return False  # a list item, heading, table row, "Answer: ..." line, or a short line
    return bool(_SENTENCE_INSIDE.search(last) and _BARE_END.search(last))


def truncated(text: str) -> str | None:
    """Why an answer looks cut off, or None."""
    if unbalanced_fences(text):
        return "unbalanced code fence"
    if ends_mid_sentence(text):
        return "ends mid-sentence"
    return None


def mojibake(text: str) -> bool:
    """Text garbled by decoding in the wrong codec (ftfy's judgement). ASCII text never is: every pattern
    of ftfy's badness regex needs a character outside ASCII (tests/unit/test_quality_fast_paths.py reads
    that off the regex itself), and asking it of every text was a quarter of the filter's time."""
    from ftfy.badness import is_bad

    return bool(text) and not text.isascii() and is_bad(text)
