"""MinHash over word n-gram shingles, vectorized with numpy per Arrow batch (no Python loop per row).

Pipeline for a batch of texts:
  prepare (Arrow compute: NFKC, templates out, lower case, CJK spaced)
  -> split into words between punctuation, symbols and whitespace and hash every word from its UTF-8 bytes
     (polynomial mod 2^64), in one compiled pass (text_words: the words of the normalized text, which
     normalize() still writes out where a caller wants the text)
  -> hash every n-gram window of word hashes -> 32-bit shingle values
  -> num_perm multiply-add-shift hash functions, minimum per row -> the signature.
The loops after prepare are compiled with numba (kernels.py).
A text shorter than n words is one shingle of all its words; an empty text has no signature.
Chinese and Japanese characters count as words.
The exact-duplicate key is a 128-bit hash of the normalized text's word sequence.
All arithmetic is uint64 and wraps on purpose.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from instructlake.dedup.kernels import (
    collapse_separators,
    min_hashes,
    row_scripts,
    sequence_hash,
    sorted_jaccard,
    window_hashes,
    word_hashes,
    words_between,
)

# Prompt-template scaffolding that says nothing about the task: removed before matching, so the same
# instruction wrapped in a chat or Alpaca template matches its bare form.
TEMPLATE_PATTERNS = (
    r"(?i)below is an instruction that describes a task(, paired with an input that provides further "
    r"context)?\. write a response that appropriately completes the request\.",
    r"(?i)###\s*(instruction|input|response|human|assistant)\s*:",
    r"(?i)\[/?inst\]|<</?sys>>|<\|im_start\|>(system|user|assistant)?|<\|im_end\|>|<\|(system|user|assistant|endoftext)\|>|</?s>",
)


CJK = r"(\p{Han}|\p{Hiragana}|\p{Katakana})"


def strip_templates(texts: pa.Array) -> pa.Array:
    """Each pattern replaced by a space, one after the other, in the rows it matches: a match only reads a
    row, where a replace rewrites every row, and few rows hold a template (the three passes over 100 MB
    on one core: 0.39-0.66 s as replaces, 0.26 s as matches and replaces in the rows that match)."""
    for pattern in TEMPLATE_PATTERNS:
        hit = pc.fill_null(pc.match_substring_regex(texts, pattern), False).to_numpy(zero_copy_only=False)
        texts = _on_rows(texts, hit, lambda x, p=pattern: pc.replace_substring_regex(x, p, " "))
    return texts


def normalize(texts: pa.Array, templates: bool = True) -> pa.Array:
    """Text as matched: NFKC, lower case, punctuation and symbols to spaces, whitespace collapsed.
    Chinese and Japanese characters become words of their own: those scripts put no spaces between words,
    so n-grams of characters stand in for n-grams of words.

    NFKC and the CJK pass run only on the rows they can change (kernels.row_scripts, from bitmaps made
    once per process, unicode_tables): on the bench's corpus 0.7% of rows need NFKC and 0.1% hold CJK, and
    normalize went from 2.40-2.55 to 1.65-1.70 s per 100 MB on one core."""
    t = prepare(texts, templates)
    return collapse(t) if len(t) else t


def prepare(texts: pa.Array, templates: bool = True) -> pa.Array:
    """normalize() but its last step (collapse): NFKC, templates out, lower case, CJK spaced."""
    t = texts.fill_null("")
    if isinstance(t, pa.ChunkedArray):
        t = t.combine_chunks()
    if len(t) == 0:
        return t
    offsets, data = _string_parts(t)
    stable, cjk = unicode_tables()
    changes, has_cjk = row_scripts(offsets - offsets[0], data[offsets[0]:offsets[-1]], stable, cjk)
    t = _on_rows(t, changes, lambda x: pc.utf8_normalize(x, "NFKC"))
    if templates:
        t = strip_templates(t)
    t = pc.utf8_lower(t)
    # a row NFKC changed may hold CJK it did not before (a circled ideograph, a symbol, becomes Han)
    return _on_rows(t, has_cjk | changes, lambda x: pc.replace_substring_regex(x, CJK, r" \1 "))


def text_words(texts: pa.Array, templates: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MinHasher(seed=seed)._words(normalize(texts, templates)), read from the prepared text in one pass
    (kernels.words_between): the words lie between the code points that collapse turns into spaces or
    that Arrow's splitter splits on, and collapse's trimming takes off none but those. Without the
    collapsed text in between, normalize + sketch of the bench's 100 MB took 1.94-2.21 s on one core,
    against 2.41-2.65 s through collapse and 2.69-2.98 s through the regular expression (four runs each)."""
    breaks = word_breaks()
    t = prepare(texts, templates)
    if breaks is None or len(t) == 0:  # an Arrow whose tables break that rule: the long way
        return MinHasher(seed=seed)._words(collapse(t) if len(t) else t)
    offsets, data = _string_parts(t)
    return words_between(offsets - offsets[0], data[offsets[0]:offsets[-1]], seed, breaks)


# What normalize's last step did as Arrow calls, and still does in the tests' reference: each run of
# punctuation, symbols and whitespace made one space, then whitespace trimmed off both ends. Matching only
# the runs that hold something other than a single space (RE2's \s is [\t\n\f\r ]) rewrote just those.
PUNCTUATION_RUNS = r"[\p{P}\p{S}\s]*[\p{P}\p{S}\t\n\f\r][\p{P}\p{S}\s]*|\s\s+"
SEPARATOR = r"[\p{P}\p{S}\s]"  # the code points those runs are made of


def collapse(t: pa.Array) -> pa.Array:
    """Each run of punctuation, symbols and whitespace one space, and whitespace trimmed off both ends:
    PUNCTUATION_RUNS and utf8_trim_whitespace in one compiled pass (kernels.collapse_separators) over
    tables asked of those same Arrow calls: 0.39-0.45 s per 100 MB on one core where those calls took
    0.68-0.85 s."""
    offsets, data = _string_parts(t)
    separator, trim = separator_tables()
    off, out = collapse_separators(offsets - offsets[0], data[offsets[0]:offsets[-1]], separator, trim)
    done = pa.LargeStringArray.from_buffers(len(t), pa.py_buffer(off), pa.py_buffer(out))
    return done.cast(t.type) if t.type != done.type else done


def _on_rows(t: pa.Array, rows: np.ndarray, step) -> pa.Array:
    """`step` applied to the rows of t where `rows` is true; the others as they are."""
    n = int(rows.sum())
    if n == 0:
        return t
    if n == len(t):
        return step(t)
    mask = pa.array(rows)
    return pc.replace_with_mask(t, mask, step(pc.filter(t, mask)))


# Hangul jamo: a leading jamo followed by a vowel (and a trailing one) composes into a syllable under NFKC
JAMO = ((0x1100, 0x1200), (0x3130, 0x3190), (0xA960, 0xA980), (0xD7B0, 0xD800))
TABLE_END = 0x40000  # past the planes Unicode assigns letters and CJK in
# Rows per Arrow batch Spark hands a Python worker that hashes text (signatures, the exact check's shingle
# sets). Spark's default, 10,000, held a worker at 266-270 MB while it hashed 100 MB, 2,000 at 200-205 MB
# (each with pandas loaded), at the same speed (0.81-1.00 s against 0.85-1.01 s); 1,000 was slower.
HASH_BATCH_ROWS = 2000


@functools.lru_cache(maxsize=1)
def _code_points() -> tuple[np.ndarray, pa.Array]:
    """Every code point below TABLE_END but the surrogates, and each as a one-character Arrow string.

    Built from one UTF-8 buffer, not from a Python string per code point: unicode_tables took 0.05-0.08 s
    and 16 MB instead of 0.13-0.16 s and 29 MB, in each process that hashes (the workers and the driver)."""
    cps = np.arange(TABLE_END, dtype=np.uint32)
    points = cps[(cps < 0xD800) | (cps >= 0xE000)]
    data = np.frombuffer(_text_of(points).encode("utf-8"), np.uint8)
    widths = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.r_[0, np.cumsum(widths)].astype(np.int32)
    arr = pa.StringArray.from_buffers(len(points), pa.py_buffer(offsets), pa.py_buffer(data))
    return points.astype(np.int64), arr


@functools.lru_cache(maxsize=1)
def separator_tables() -> tuple[np.ndarray, np.ndarray]:
    """(separator, trim) bitmaps over code points below TABLE_END: what SEPARATOR matches, and what
    utf8_trim_whitespace takes off. No code point past TABLE_END is either (tests/unit/
    test_normalize_passes.py asks Arrow of every one)."""
    points, arr = _code_points()
    separator = np.zeros(TABLE_END, np.bool_)
    separator[points[pc.match_substring_regex(arr, SEPARATOR).to_numpy(zero_copy_only=False)]] = True
    trim = np.zeros(TABLE_END, np.bool_)
    trimmed = pc.equal(pc.binary_length(pc.utf8_trim_whitespace(arr)), 0)
    trim[points[trimmed.to_numpy(zero_copy_only=False)]] = True
    return separator, trim


@functools.lru_cache(maxsize=1)
def split_spaces() -> np.ndarray:
    """The bitmap of the code points below TABLE_END that Arrow's utf8_split_whitespace splits on."""
    points, arr = _code_points()
    inner = pc.binary_join_element_wise("a", arr, "b", "")
    n_words = pc.list_value_length(pc.utf8_split_whitespace(inner)).to_numpy(zero_copy_only=False)
    out = np.zeros(TABLE_END, np.bool_)
    out[points[n_words == 2]] = True
    return out


@functools.lru_cache(maxsize=1)
def word_breaks() -> np.ndarray | None:
    """The code points no word of a normalized text holds: separators and Arrow's whitespace; None when
    this Arrow trims a code point that is neither, or splits on one it does not trim (then words cannot be
    read before collapse: text_words)."""
    separator, trim = separator_tables()
    spaces = split_spaces()
    breaks = separator | spaces
    return breaks if not (trim & ~breaks).any() and not (spaces & ~trim).any() else None


def _text_of(points: np.ndarray) -> str:
    """The code points (no surrogates among them) as one Python string, one character each."""
    return points.astype("<u4").tobytes().decode("utf-32-le")


def _no_mark_and_assigned(category: str) -> bool:
    return category[0] != "M" and category != "Cn"


@functools.lru_cache(maxsize=1)
def unicode_tables() -> tuple[np.ndarray, np.ndarray]:
    """(stable, cjk) bitmaps over code points below TABLE_END, asked of the same Arrow that normalizes:
    stable: ASCII, and every code point that Arrow's NFKC leaves as it is alone, that is no mark (a mark
    can compose with the letter before it), no Hangul jamo and assigned in Python's Unicode tables too (a
    code point newer than those could be a mark they do not know); cjk: what the CJK pass's pattern
    matches. About a tenth of a second, once per process."""
    points, arr = _code_points()
    points, arr = points[0x80:], arr[0x80:]
    same = pc.equal(pc.utf8_normalize(arr, "NFKC"), arr).to_numpy(zero_copy_only=False)
    # one character at a time, each freed before the next (no list of 250,000 strings: _code_points)
    chars = _text_of(points)
    known = np.fromiter((_no_mark_and_assigned(unicodedata.category(c)) for c in chars), np.bool_, len(chars))
    alone = known & same
    for lo, hi in JAMO:
        alone &= ~((points >= lo) & (points < hi))
    stable = np.zeros(TABLE_END, np.bool_)
    stable[:0x80] = True
    stable[points[alone]] = True
    cjk = np.zeros(TABLE_END, np.bool_)
    cjk[points[pc.match_substring_regex(arr, CJK).to_numpy(zero_copy_only=False)]] = True
    return stable, cjk


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a string array, honouring its slice offset."""
    arr = arr.cast(pa.large_string()) if arr.type == pa.string() else arr
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


@dataclass(frozen=True)
class MinHasher:
    num_perm: int = 128
    ngram: int = 5
    seed: int = 42

    def _params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(1, 2**63, size=self.num_perm, dtype=np.uint64) | np.uint64(1)
        b = rng.integers(0, 2**63, size=self.num_perm, dtype=np.uint64)
        c = rng.integers(1, 2**63, size=self.ngram, dtype=np.uint64) | np.uint64(1)
        return a, b, c

    def _words(self, normalized: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(word offsets per row, 64-bit hash of every word) for a batch of normalized texts: the words
        pyarrow's utf8_split_whitespace gives, each hashed from its UTF-8 bytes (kernels.word_hashes)."""
        if isinstance(normalized, pa.ChunkedArray):
            normalized = normalized.combine_chunks()
        offsets, data = _string_parts(normalized.fill_null("") if normalized.null_count else normalized)
        return word_hashes(offsets - offsets[0], data[offsets[0]:offsets[-1]], self.seed)

    def _shingles(self, row_off: np.ndarray, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, _, h = self._windows(row_off, tok)
        return rows, h >> np.uint64(32)

    def ngrams(self, normalized: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row index, 64-bit n-gram hash, index of its first word in the row) for every n-gram window of
        every row (a row shorter than n words: one window of all its words)."""
        row_off, tok = self._words(normalized)
        rows, starts, h = self._windows(row_off, tok)
        return rows, h, starts - row_off[rows]

    def _windows(self, row_off: np.ndarray, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, global index of the first word, finalized 64-bit hash) of every window."""
        _, _, c = self._params()
        return window_hashes(row_off, tok, c)

    def shingles(self, normalized: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(row index, 32-bit shingle value) for every shingle of every row, rows in order."""
        return self._shingles(*self._words(normalized))

    def signatures(self, normalized: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(signatures uint32 [rows, num_perm], has_signature bool [rows])."""
        sig, has, _, _, _ = self.sketch(normalized)
        return sig, has

    def sketch(self, normalized: pa.Array):
        """(signatures, has_signature, exact_h1, exact_h2, words per row) for a batch of normalized texts.

        The exact key hashes the word sequence (a normalized text is its words joined by single spaces),
        with two independent position weightings: 128 bits."""
        return self._sketch(*self._words(normalized), len(normalized))

    def sketch_texts(self, texts: pa.Array, templates: bool = True):
        """sketch(normalize(texts, templates)), without the normalized text (text_words)."""
        return self._sketch(*text_words(texts, templates, self.seed), len(texts))

    def _sketch(self, row_off: np.ndarray, tok: np.ndarray, n_rows: int):
        rows, x = self._shingles(row_off, tok)
        a, b, _ = self._params()
        sig = np.full((n_rows, self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        min_hashes(rows, x, a, b, sig)
        has = np.zeros(n_rows, dtype=bool)
        has[rows] = True
        counts = np.diff(row_off)
        h1, h2 = _sequence_hashes(row_off, tok)
        return sig, has, h1, h2, counts


def _sequence_hashes(row_off: np.ndarray, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row of its word-hash sequence (position-weighted sums, then mixed)."""
    return (sequence_hash(row_off, tok, np.uint64(0x9E3779B97F4A7C15)),
            sequence_hash(row_off, tok, np.uint64(0xC2B2AE3D27D4EB4F)))


def exact_hashes(normalized: pa.Array, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit exact-duplicate key of each normalized text, as two 64-bit halves."""
    return _sequence_hashes(*MinHasher(seed=seed)._words(normalized))


def pair_jaccard(hasher: MinHasher, left: pa.Array, right: pa.Array) -> np.ndarray:
    """The Jaccard similarity of the shingle sets of left[i] and right[i], for every i at once: what MinHash
    estimates, computed exactly (shingles are the same 32-bit values the signatures are made from).

    Both sides' shingle sets in one shingle_sets() layout, left rows first, intersected by set_jaccard."""
    n = len(left)
    (oa, va), (ob, vb) = shingle_sets(hasher, left), shingle_sets(hasher, right)
    offsets = np.r_[oa, oa[-1] + ob[1:]]
    return set_jaccard(offsets, np.r_[va, vb], np.arange(n), n + np.arange(n))


def shingle_sets(hasher: MinHasher, normalized: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values): row i's distinct shingle values, sorted, are values[offsets[i]:offsets[i+1]]."""
    return _sets(*hasher.shingles(normalized), len(normalized))


def text_shingle_sets(hasher: MinHasher, texts: pa.Array,
                      templates: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """shingle_sets(hasher, normalize(texts, templates)), without the normalized text (text_words)."""
    return _sets(*hasher._shingles(*text_words(texts, templates, hasher.seed)), len(texts))


def _sets(rows: np.ndarray, vals: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    keys = _sorted_unique((rows.astype(np.uint64) << np.uint64(32)) | vals.astype(np.uint64))
    sizes = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=n_rows)
    return np.r_[0, np.cumsum(sizes)].astype(np.int64), (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def set_jaccard(offsets: np.ndarray, values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard similarity of sets a[i] and b[i] of a shingle_sets() layout, for every i: what pair_jaccard
    computes from the two texts, from sets made once per text however many pairs name it."""
    return sorted_jaccard(np.ascontiguousarray(offsets, np.int64), np.ascontiguousarray(values, np.uint32),
                          np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64))


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    # np.sort plus a mask: many times faster than np.unique on millions of uint64 keys
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def shingle_set(normalized_text: str, ngram: int) -> set[tuple[str, ...]]:
    """The exact word n-gram set that MinHash estimates (a text shorter than n words is one shingle)."""
    words = normalized_text.split()
    if len(words) < ngram:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)}


def exact_jaccard(a: str, b: str, ngram: int) -> float:
    sa, sb = shingle_set(a, ngram), shingle_set(b, ngram)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 0.0


# ---------------------------------------------------------------- LSH parameters


def _integrate(f, a: float, b: float, n: int = 200) -> float:
    xs = np.linspace(a, b, n + 1)
    ys = f(xs)
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)))


def false_positive_area(threshold: float, bands: int, rows: int) -> float:
    return _integrate(lambda s: 1 - (1 - s ** rows) ** bands, 0.0, threshold)


def false_negative_area(threshold: float, bands: int, rows: int) -> float:
    return _integrate(lambda s: 1 - (1 - (1 - s ** rows) ** bands), threshold, 1.0)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimizing the weighted FP and FN areas."""
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * false_positive_area(threshold, b, r) + fn_weight * false_negative_area(threshold, b, r)
            if err < best_err - 1e-12:
                best, best_err = (b, r), err
    return best
