"""Dedup's inner loops, compiled with numba: normalize's punctuation collapse, the word split and word
hashes, the n-gram windows, the exact-duplicate key, MinHash's permutations and the exact check's set
intersections.

Each does the arithmetic the numpy (and Arrow) code before it did, value for value: stored signatures
stay valid, and tests/unit/test_minhash.py holds the earlier code as the reference. What they save is
the intermediate arrays: a string per word, every (shingle x permutation) hash written to memory three
times, sets intersected by sorting and binary search. One core, the dedup-speed corpus: words 2.35 s ->
0.56 s and windows + key 1.25 s -> 0.39 s per 125 MB; the permutations 0.91 s -> 0.26 s per 39 MB;
235,000 pair intersections 6.2 s -> 0.7 s. The first call in a process compiles (under a second each);
numba keeps the machine code in its cache for the next process. Where `python build.py setup` compiled
them ahead of time for this CPU (kernel_build), a process loads that module instead and never imports numba.
"""

from __future__ import annotations

import numpy as np

from instructlake.dedup import kernel_build

# the module built ahead of time for this source, numba, Python and CPU (kernel_build), if there is one
_BUILT = kernel_build.load()
# name -> numba signature of each kernel called from Python: what kernel_build compiles ahead of time
EXPORTS: dict[str, str] = {}


def _compiled(signature: str | None = None, **options):
    """A kernel: with a signature, one called from Python (the built module's function where there is
    one); without, a helper the kernels call, compiled into them."""
    def wrap(fn):
        if signature:
            EXPORTS[fn.__name__] = signature
        if _BUILT is not None and not signature:
            return fn  # a helper stays Python: the built kernels hold their own compiled copies of it
        if _BUILT is not None:
            return kernel_build.checked(getattr(_BUILT, fn.__name__), fn.__name__, signature)
        import numba

        try:
            return numba.njit(cache=True, nogil=True, **options)(fn)
        except RuntimeError:  # numba found no writable place for its cache (a read-only install and home)
            return numba.njit(nogil=True, **options)(fn)
    return wrap


@_compiled("void(i8[::1], u8[::1], u8[::1], u8[::1], u4[:, ::1])")
def min_hashes(rows: np.ndarray, shingles: np.ndarray, a: np.ndarray, b: np.ndarray, sig: np.ndarray) -> None:
    """sig[rows[i], p] = min(sig[rows[i], p], high 32 bits of (a[p] * shingles[i] + b[p]) mod 2^64), for
    every shingle i and permutation p; uint64 arithmetic wraps, as in numpy.

    min() rather than a compare and a store: the loop over permutations then has no branch and compiles
    to vector instructions, 2.8x faster (0.67 -> 0.24 s for the 6.3 million shingles of 20,000 texts)."""
    for i in range(shingles.shape[0]):
        x = shingles[i]
        row = sig[rows[i]]
        for p in range(a.shape[0]):
            row[p] = min(row[p], np.uint32((a[p] * x + b[p]) >> np.uint64(32)))


@_compiled("f8[::1](i8[::1], u4[::1], i8[::1], i8[::1])")
def sorted_jaccard(offsets: np.ndarray, values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard similarity of sets a[k] and b[k], set i being values[offsets[i]:offsets[i + 1]], sorted
    and distinct: one merge walk per pair. Two empty sets: 0."""
    out = np.zeros(a.shape[0])
    for k in range(a.shape[0]):
        i, i_end = offsets[a[k]], offsets[a[k] + 1]
        j, j_end = offsets[b[k]], offsets[b[k] + 1]
        union = (i_end - i) + (j_end - j)
        inter = 0
        while i < i_end and j < j_end:
            x, y = values[i], values[j]
            if x == y:
                inter += 1
                i += 1
                j += 1
            elif x < y:
                i += 1
            else:
                j += 1
        union -= inter
        if union > 0:
            out[k] = inter / union
    return out


@_compiled(inline="always")
def _code_point(data: np.ndarray, i: int) -> tuple[int, int]:
    """(code point, byte length) of the UTF-8 character starting at data[i]."""
    c = data[i]
    if c < 0x80:
        return c, 1
    if c >= 0xF0:
        return (((c & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6)
                | (data[i + 3] & 0x3F)), 4
    if c >= 0xE0:
        return ((c & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    return ((c & 0x1F) << 6) | (data[i + 1] & 0x3F), 2


@_compiled(inline="always")
def _in(table: np.ndarray, cp: int) -> bool:
    return cp < table.shape[0] and table[cp]


@_compiled(inline="always")  # a call per byte would cost more than its body
def _space_at(data: np.ndarray, i: int, end: int) -> int:
    """Byte length of the whitespace character starting at data[i] (0 if there is none): the 29 code
    points pyarrow's utf8_split_whitespace splits on, found by trying every code point (the tests list
    them as SPACES), in UTF-8."""
    c = data[i]
    if c < 0x80:
        return 1 if (0x09 <= c <= 0x0D) or (0x1C <= c <= 0x20) else 0
    n1 = data[i + 1] if i + 1 < end else 0
    n2 = data[i + 2] if i + 2 < end else 0
    if c == 0xC2:  # U+0085, U+00A0
        return 2 if n1 == 0x85 or n1 == 0xA0 else 0
    if c == 0xE1:  # U+1680
        return 3 if n1 == 0x9A and n2 == 0x80 else 0
    if c == 0xE2:  # U+2000-U+200A, U+2028, U+2029, U+202F; U+205F
        if n1 == 0x80 and (0x80 <= n2 <= 0x8A or n2 == 0xA8 or n2 == 0xA9 or n2 == 0xAF):
            return 3
        return 3 if n1 == 0x81 and n2 == 0x9F else 0
    if c == 0xE3:  # U+3000
        return 3 if n1 == 0x80 and n2 == 0x80 else 0
    return 0


@_compiled(inline="always")
def _mix(h: np.uint64) -> np.uint64:
    """splitmix64's finalizer: spreads the bits of a weak polynomial hash."""
    h = h + np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@_compiled(inline="always")
def _word_base(seed: int) -> np.uint64:
    """The base of a word's polynomial hash (both word passes, one value)."""
    return np.uint64(1099511628211 + 2 * seed)


@_compiled(inline="always")
def _finish(h: np.uint64, length: int, seed: np.uint64) -> np.uint64:
    """A word's hash from its polynomial sum: the length and the seed added, then mixed."""
    return _mix(h + np.uint64(length) * np.uint64(0x9E3779B97F4A7C15) + seed)


def word_hashes(offsets: np.ndarray, data: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(word offsets per row, 64-bit hash of every word) of a string array given as its (int64 offsets,
    bytes): minhash's word split and word hash in one pass over the bytes, with no string per word.

    Words as pyarrow's utf8_split_whitespace gives them: a run of whitespace separates two words, a text
    that starts or ends with whitespace has an empty first or last word, and a run of two or more at the
    end also gives an empty word before its last character. An empty text has none. A word's hash is
    the sum of (byte + 1) * p^(bytes after it) mod 2^64, finished by _finish."""
    return _words_with(_split_into, offsets, data, seed)


def words_between(offsets: np.ndarray, data: np.ndarray, seed: int,
                  breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(word offsets per row, 64-bit hash of every word) where a word is a run of code points outside
    the bitmap `breaks` (as long as the run goes on): hashed as word_hashes hashes."""
    return _words_with(lambda o, d, s, t, r: _split_on_into(o, d, s, breaks, t, r), offsets, data, seed)


def _words_with(split, offsets: np.ndarray, data: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = len(offsets) - 1
    row_off = np.zeros(rows + 1, np.int64)
    tok = np.empty(len(data) // 4 + rows + 16, np.uint64)  # about one word per 6 bytes of text
    n = split(offsets, data, seed, tok, row_off)
    if n < 0:  # more words than that: a text has at most one word per byte, plus one
        tok = np.empty(len(data) + rows + 1, np.uint64)
        n = split(offsets, data, seed, tok, row_off)
    return row_off, tok[:n].copy()


@_compiled("i8(i8[::1], u1[::1], i8, b1[::1], u8[::1], i8[::1])")
def _split_on_into(offsets: np.ndarray, data: np.ndarray, seed: int, breaks: np.ndarray, tok: np.ndarray,
                   row_off: np.ndarray) -> int:
    """words_between into tok and row_off, as _split_into does for whitespace."""
    p = _word_base(seed)
    s = np.uint64(seed)
    cap = tok.shape[0]
    n = 0
    for r in range(offsets.shape[0] - 1):
        i, end = offsets[r], offsets[r + 1]
        h = np.uint64(0)
        length = 0
        while i <= end:
            if i < end:
                cp, w = _code_point(data, i)
                if not _in(breaks, cp):
                    for k in range(w):
                        h = h * p + np.uint64(data[i + k]) + np.uint64(1)
                    length += w
                    i += w
                    continue
            else:
                w = 1
            if length:  # a break, or the text's end, after a word
                if n >= cap:
                    return -1
                tok[n] = _finish(h, length, s)
                n += 1
                h = np.uint64(0)
                length = 0
            i += w
        row_off[r + 1] = n
    return n


@_compiled("i8(i8[::1], u1[::1], i8, u8[::1], i8[::1])")
def _split_into(offsets: np.ndarray, data: np.ndarray, seed: int, tok: np.ndarray,
                row_off: np.ndarray) -> int:
    """word_hashes into tok and row_off; the number of words, or -1 when tok is too small. (tok is never
    replaced in here: a reassigned array made the loop eight times slower.)"""
    p = _word_base(seed)
    s = np.uint64(seed)
    cap = tok.shape[0]
    n = 0
    for r in range(offsets.shape[0] - 1):
        start, end = offsets[r], offsets[r + 1]
        begin = start
        i = start
        h = np.uint64(0)
        while i < end:
            w = _space_at(data, i, end)
            if w == 0:
                h = h * p + np.uint64(data[i]) + np.uint64(1)
                i += 1
                continue
            if n >= cap:
                return -1
            tok[n] = _finish(h, i - begin, s)
            n += 1
            i += w
            # the run goes on while the next character is whitespace and not the text's last (as in
            # Arrow's splitter, whose loop tests the end after decoding: a last space is a separator
            # of its own)
            while i < end:
                w = _space_at(data, i, end)
                if w == 0 or i + w >= end:
                    break
                i += w
            begin = i
            h = np.uint64(0)
        if end > start:
            if n >= cap:
                return -1
            tok[n] = _finish(h, end - begin, s)
            n += 1
        row_off[r + 1] = n
    return n


@_compiled(inline="always")
def _windows_of(words: int, n: int) -> int:
    """Windows of n words in a row of `words` words: one for a short row that has any."""
    return words - n + 1 if words >= n else min(words, 1)


@_compiled("Tuple((i8[::1], i8[::1], u8[::1]))(i8[::1], u8[::1], u8[::1])")
def window_hashes(row_off: np.ndarray, tok: np.ndarray,
                  c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, index of the first word, 64-bit hash) of every window of len(c) consecutive words of a row:
    the sum of c[j] * tok[first + j] mod 2^64, mixed. A row of fewer words than that has one window of
    all of them; a row without words has none."""
    n = c.shape[0]
    rows_n = row_off.shape[0] - 1
    total = 0
    for r in range(rows_n):
        total += _windows_of(row_off[r + 1] - row_off[r], n)
    rows = np.empty(total, np.int64)
    starts = np.empty(total, np.int64)
    out = np.empty(total, np.uint64)
    k = 0
    for r in range(rows_n):
        first = row_off[r]
        words = row_off[r + 1] - first
        width = n if words >= n else words
        for s in range(first, first + _windows_of(words, n)):
            acc = np.uint64(0)
            for j in range(width):
                acc += tok[s + j] * c[j]
            rows[k] = r
            starts[k] = s
            out[k] = _mix(acc)
            k += 1
    return rows, starts, out


@_compiled("u8[::1](i8[::1], u8[::1], u8)")
def sequence_hash(row_off: np.ndarray, tok: np.ndarray, key: np.uint64) -> np.ndarray:
    """One 64-bit hash per row of its word-hash sequence: the sum of mix(tok + key) * key^(position + 1)
    mod 2^64, plus the word count times key, mixed."""
    rows_n = row_off.shape[0] - 1
    out = np.empty(rows_n, np.uint64)
    for r in range(rows_n):
        acc = np.uint64(0)
        weight = np.uint64(1)
        for i in range(row_off[r], row_off[r + 1]):
            weight *= key
            acc += _mix(tok[i] + key) * weight
        out[r] = _mix(acc + np.uint64(row_off[r + 1] - row_off[r]) * key)
    return out


@_compiled("UniTuple(b1[::1], 2)(i8[::1], u1[::1], b1[::1], b1[::1])")
def row_scripts(offsets: np.ndarray, data: np.ndarray, stable: np.ndarray,
                cjk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(may change under NFKC, holds a CJK character) per row of UTF-8 text: a row changes only if it holds
    a code point outside `stable` (a bitmap of those NFKC leaves as they are, alone and beside others;
    ASCII always is; past the bitmap counts as outside); `cjk` is the bitmap of Han, Hiragana and
    Katakana code points."""
    n = offsets.shape[0] - 1
    changes = np.zeros(n, np.bool_)
    has_cjk = np.zeros(n, np.bool_)
    for r in range(n):
        i, end = offsets[r], offsets[r + 1]
        while i < end:
            c = data[i]
            if c < 0x80:
                i += 1
                continue
            cp, w = _code_point(data, i)
            i += w
            if not _in(stable, cp):
                changes[r] = True
            if _in(cjk, cp):
                has_cjk[r] = True
    return changes, has_cjk


@_compiled("u8[::1](u4[:, :])")
def row_hashes(block: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of a (rows x columns) uint32 block: each value folded in with _mix."""
    out = np.empty(block.shape[0], np.uint64)
    for r in range(block.shape[0]):
        h = np.uint64(0)
        for j in range(block.shape[1]):
            h = _mix(h ^ (np.uint64(block[r, j]) + np.uint64(j)))
        out[r] = h
    return out


@_compiled("Tuple((i8[::1], u1[::1]))(i8[::1], u1[::1], b1[::1], b1[::1])")
def collapse_separators(offsets: np.ndarray, data: np.ndarray, separator: np.ndarray,
                        trim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of the texts with every run of code points in `separator` made one space, then
    the code points in `trim` taken off both ends: what Arrow's replace_substring_regex with normalize's
    punctuation pattern followed by utf8_trim_whitespace gives (the tables come from those same calls,
    minhash.separator_tables), in one pass and without a regular expression."""
    rows = offsets.shape[0] - 1
    out_off = np.zeros(rows + 1, np.int64)
    out = np.empty(data.shape[0], np.uint8)  # a run of one or more bytes becomes one byte: never longer
    n = 0
    for r in range(rows):
        begin = n
        i, end = offsets[r], offsets[r + 1]
        in_run = False
        while i < end:
            cp, w = _code_point(data, i)
            if _in(separator, cp):
                if not in_run:
                    out[n] = 0x20
                    n += 1
                    in_run = True
            else:
                for k in range(w):
                    out[n + k] = data[i + k]
                n += w
                in_run = False
            i += w
        # the ends: the first and the last code point that trim keeps, if any
        lo = begin
        while lo < n:
            cp, w = _code_point(out, lo)
            if not _in(trim, cp):
                break
            lo += w
        hi = n
        while hi > lo:
            j = hi - 1
            while out[j] & 0xC0 == 0x80:  # back over continuation bytes to the character's first byte
                j -= 1
            cp, w = _code_point(out, j)
            if not _in(trim, cp):
                break
            hi = j
        if lo > begin:
            for k in range(hi - lo):
                out[begin + k] = out[lo + k]
        n = begin + (hi - lo)
        out_off[r + 1] = n
    return out_off, out[:n].copy()
