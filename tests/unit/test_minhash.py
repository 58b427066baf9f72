import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.dedup.minhash import (
    MinHasher,
    exact_hashes,
    false_negative_area,
    false_positive_area,
    normalize,
    optimal_bands,
)


def norm(*texts):
    return normalize(pa.array(list(texts)))


def test_normalize_case_punctuation_whitespace_nfkc():
    assert norm("Hello,   WORLD!!\n\tﬁne", None, "  ").to_pylist() == ["hello world fine", "", ""]


def test_shingles_empty_short_and_long():
    mh = MinHasher(ngram=5)
    rows, x = mh.shingles(norm("", "two words", "one two three four five six seven"))
    # empty: none; shorter than n: one shingle of all its words; 7 words: 3 windows of 5
    assert np.bincount(rows, minlength=3).tolist() == [0, 1, 3]
    assert (x < 2**32).all()


def test_non_latin_scripts_shingle_by_character():
    mh = MinHasher(ngram=3)
    rows, _ = mh.shingles(norm("完全不同的中文", "это русский текст из пяти слов"))
    assert np.bincount(rows).tolist() == [5, 4]  # 7 Han characters -> 5 windows; 6 Cyrillic words -> 4
    sig, has = MinHasher().signatures(norm("机器学习是人工智能的一个分支", "机器学习是人工智能的一个分支。", "今天天气很好"))
    assert has.all() and (sig[0] == sig[1]).all() and (sig[0] != sig[2]).mean() > 0.9


def test_signature_order_and_batch_independent():
    mh = MinHasher()
    texts = [f"sample number {i} with some shared words in it" for i in range(50)]
    whole, _ = mh.signatures(norm(*texts))
    parts = np.vstack([mh.signatures(norm(*texts[i:i + 7]))[0] for i in range(0, 50, 7)])
    assert (whole == parts).all()
    assert (mh.signatures(norm(*texts[::-1]))[0][::-1] == whole).all()


def test_jaccard_estimate_within_statistical_bound():
    """Sets with known Jaccard J: the estimate is Binomial(P, J) / P, so |err| < 4 sigma nearly always."""
    mh = MinHasher(num_perm=256, ngram=1, seed=3)
    rng = np.random.default_rng(0)
    errors = []
    for trial in range(40):
        shared = int(rng.integers(5, 200))
        only = int(rng.integers(0, 200))
        a = [f"w{trial}_{i}" for i in range(shared + only)]
        b = [f"w{trial}_{i}" for i in range(only, only + shared + only)]
        true_j = shared / (shared + 2 * only)
        sig, _ = mh.signatures(norm(" ".join(a), " ".join(b)))
        est = float((sig[0] == sig[1]).mean())
        bound = 4 * math.sqrt(true_j * (1 - true_j) / 256) + 1e-9
        assert abs(est - true_j) <= bound, (true_j, est)
        errors.append(est - true_j)
    assert abs(np.mean(errors)) < 0.02  # unbiased


def test_exact_hashes_match_only_identical_normalized_text():
    h1, h2 = exact_hashes(norm("Same text.", "same   TEXT", "same text!", "other text", ""))
    assert h1[0] == h1[1] == h1[2] and h2[0] == h2[1] == h2[2]
    assert h1[3] != h1[0] and h1[4] != h1[0]


def test_band_math():
    bands, rows = optimal_bands(0.8, 128)
    assert bands * rows <= 128
    assert (bands, rows) == (9, 13)
    # the S-curve's knee sits near the threshold: (1/b)^(1/r)
    assert abs((1 / bands) ** (1 / rows) - 0.8) < 0.05
    assert false_positive_area(0.8, bands, rows) < 0.05 and false_negative_area(0.8, bands, rows) < 0.05
    lo = optimal_bands(0.5, 128)
    assert (1 / lo[0]) ** (1 / lo[1]) < 0.6
    # weighting false negatives more gives more bands (more candidates, fewer misses)
    assert optimal_bands(0.8, 128, fp_weight=0.1, fn_weight=0.9)[0] > bands


@pytest.mark.parametrize("bad", [{"turns": "none"}, {"threshold": 0}, {"ngram": 0}])
def test_dedup_config_validation(bad):
    from instructlake.config import ConfigError, DedupConfig

    with pytest.raises(ConfigError):
        DedupConfig(**bad)


def test_exact_jaccard_matches_the_shingle_definition():
    from instructlake.dedup.minhash import exact_jaccard, shingle_set

    assert shingle_set("a b c", 5) == {("a", "b", "c")} and shingle_set("", 5) == set()
    assert shingle_set("a b c d e f", 5) == {("a", "b", "c", "d", "e"), ("b", "c", "d", "e", "f")}
    assert exact_jaccard("a b c d e f", "a b c d e f", 5) == 1.0
    assert exact_jaccard("a b c d e f", "a b c d e g", 5) == 1 / 3
    assert exact_jaccard("", "", 5) == 0.0
    # the estimate from signatures agrees with it within its error
    text_a = " ".join(f"w{i}" for i in range(200))
    text_b = " ".join(f"w{i}" for i in range(20, 220))
    sig, _ = MinHasher(num_perm=256).signatures(norm(text_a, text_b))
    assert abs((sig[0] == sig[1]).mean() - exact_jaccard(text_a, text_b, 5)) < 0.1


def test_batches_with_nothing_to_hash():
    sig, has, _, _, words = MinHasher().sketch(norm("", None, "!!! ???"))
    assert not has.any() and words.tolist() == [0, 0, 0]
    sig, has, h1, _, _ = MinHasher().sketch(normalize(pa.array([], pa.string())))
    assert sig.shape == (0, 128) and len(has) == len(h1) == 0


def test_pair_jaccard_equals_the_string_computation():
    import random

    import pyarrow as pa

    from instructlake.dedup.minhash import MinHasher, exact_jaccard, normalize, pair_jaccard

    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(40)] + ["数", "学", "é"]
    left, right = [], []
    for _ in range(300):
        a = [rng.choice(vocab) for _ in range(rng.randrange(0, 60))]
        b = list(a)
        for _ in range(rng.randrange(0, 10)):  # edits at random places
            if b and rng.random() < 0.5:
                b[rng.randrange(len(b))] = rng.choice(vocab)
            else:
                b.insert(rng.randrange(len(b) + 1), rng.choice(vocab))
        left.append(" ".join(a))
        right.append(" ".join(b) if rng.random() < 0.9 else "")
    n1, n2 = normalize(pa.array(left)), normalize(pa.array(right))
    got = pair_jaccard(MinHasher(ngram=3), n1, n2)
    want = [exact_jaccard(x, y, 3) for x, y in zip(n1.to_pylist(), n2.to_pylist(), strict=True)]
    assert len(set(want)) > 50  # a spread of similarities, not only 0 and 1
    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 1e-9


def test_set_jaccard_from_shingle_sets_equals_the_string_computation():
    """The exact check's sets, made once per text and intersected per pair, give the exact n-gram Jaccard
    of the two texts, for empty and short texts too."""
    import random

    import numpy as np

    from instructlake.dedup.minhash import MinHasher, exact_jaccard, set_jaccard, shingle_sets

    rng = random.Random(5)
    words = "a b c d e f g h".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 25))) for _ in range(200)] + ["", "a"]
    hasher = MinHasher(ngram=3)
    norm = normalize(pa.array(texts))
    offsets, values = shingle_sets(hasher, norm)
    assert len(offsets) == len(texts) + 1 and offsets[-1] == len(values)
    a = np.array([rng.randrange(len(texts)) for _ in range(1500)] + list(range(0, 200, 10)) + [200, 200, 201])
    b = np.array([rng.randrange(len(texts)) for _ in range(1500)] + list(range(0, 200, 10)) + [200, 201, 201])
    strings = norm.to_pylist()
    want = np.array([exact_jaccard(strings[i], strings[j], 3) for i, j in zip(a, b, strict=True)])
    assert 0.05 < (want > 0).mean() < 0.95 and (want == 1).sum() >= 20  # overlaps of every degree
    np.testing.assert_array_equal(set_jaccard(offsets, values, a, b), want)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=300), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_the_compiled_permutations_equal_the_numpy_expression(row_of, num_perm, seed):
    """min_hashes against the numpy expression of the same hash: every (shingle, permutation) value,
    (a * x + b) mod 2^64 with its high 32 bits kept, and the minimum per row; rows without a shingle keep
    their initial value. Shingles take full 32-bit values, so the products wrap."""
    from instructlake.dedup.kernels import min_hashes

    rng = np.random.default_rng(seed)
    rows = np.sort(np.array(row_of, dtype=np.int64))
    x = rng.integers(0, 2**32, size=len(rows), dtype=np.uint64)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    got = np.full((6, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    min_hashes(rows, x, a, b, got)
    with np.errstate(over="ignore"):
        every = ((x[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).astype(np.uint32)
    want = np.full((6, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    np.minimum.at(want, rows, every)
    np.testing.assert_array_equal(got, want)


def test_signatures_and_exact_keys_are_pinned():
    """Refreshes reuse the signatures stored under the same dedup settings, so the hash functions must
    never change silently: a new signature beside an old one for the same text would stop matching. A
    deliberate change fails here and must also change what the stored signatures are keyed by
    (DedupConfig.signature_fields)."""
    texts = norm("The quick brown fox jumps over the lazy dog, again and again.", "Short one")
    sig, has, h1, h2, words = MinHasher().sketch(texts)
    assert sig[0][:6].tolist() == [2397733332, 40564051, 594132628, 43825813, 1300642653, 352270782]
    assert sig[1][:6].tolist() == [1558151137, 3743887856, 3061334502, 2820082325, 3841373776, 1288355200]
    assert int(sig[0].astype(np.int64).sum()) == 61643772425
    assert (int(h1[0]), int(h2[0])) == (7443215875783092225, 3408785806359694045)
    assert has.tolist() == [True, True] and words.tolist() == [12, 2]


def two_pass_normalize(texts: pa.Array) -> pa.Array:
    """normalize as it was written before its punctuation and whitespace passes were merged: stored
    signatures were computed from this text, so the merged pass must give the same."""
    import pyarrow.compute as pc

    from instructlake.dedup.minhash import strip_templates

    t = strip_templates(pc.utf8_normalize(texts.fill_null(""), "NFKC"))
    t = pc.utf8_lower(t)
    t = pc.replace_substring_regex(t, r"[\p{P}\p{S}]+", " ")
    t = pc.replace_substring_regex(t, r"(\p{Han}|\p{Hiragana}|\p{Katakana})", r" \1 ")
    t = pc.replace_substring_regex(t, r"\s\s+|[^\S ]", " ")
    return pc.utf8_trim_whitespace(t)


# where normalize's skipping of NFKC and of the CJK pass could go wrong, each beside letters: combining marks
# (after a letter they compose), Hangul jamo (they compose into syllables), a CJK compatibility ideograph,
# a circled ideograph and a squared katakana word (NFKC makes the first Han and the others Han or kana from
# a symbol), the Kelvin sign and long s, pairs of Unicode 16 vowel signs that compose (newer than Python
# 3.11's Unicode 14, so Python's tables do not know they are marks), a Unicode 15 modifier letter with a
# compatibility mapping, typographic quotes and dashes, an emoji with its variation selector
SKIPPED_WHERE_SAFE = ["\u0301", "e\u0301", "\u0327", "\u1100\u1161", "\uac00\u11a8", "\u1161", "\uf900",
                      "\u3280", "\u3300", "\u212a", "\u017f", "\U000113c2\U000113b8", "\U00016d67\U00016d67",
                      "\U0001e030", "\u2019", "\u2014", "\u00a0", "\U0001f680\ufe0f", "\u0b47\u0b3e",
                      "\u304b\u3099"]


def test_normalize_skips_nfkc_and_the_cjk_pass_only_where_they_change_nothing():
    texts = [f"ab{x}cd {x}" for x in SKIPPED_WHERE_SAFE] + ["plain ascii", "caf\u00e9 \u2019quoted\u2019"]
    arr = pa.array(texts, pa.string())
    assert normalize(arr).to_pylist() == two_pass_normalize(arr).to_pylist()
    assert normalize(arr).to_pylist()[3] == "ab\uac00cd \uac00"  # jamo composed: NFKC was not skipped


# the characters where the two ways could part: punctuation and symbols (ASCII, CJK, a Kangxi radical that
# is a Han symbol, the katakana middle dot), every kind of whitespace (ASCII, vertical tab, no-break,
# ideographic, line separator), CJK and kana, letters that NFKC or lower-casing change, and templates
SPECIAL = list(",.!?;:'\"()[]{}<>#*-_/\\|@$%^&+=~`") + list("。、「」・ー〜⺀⼀") + \
    ["\t", "\n", "\r", "\f", "\v", " ", "\u00a0", "\u3000", "\u2028", "\u2003"] + \
    list("日本語のカタカナひらがな漢字") + list("AbÇﬁＡ①ß") + ["### Instruction:", "[INST]", "<|im_end|>"] \
    + SKIPPED_WHERE_SAFE


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=3)), max_size=12)
                .map("".join) | st.none(), min_size=1, max_size=20))
def test_the_merged_pass_normalizes_as_the_two_passes_did(texts):
    arr = pa.array(texts, pa.string())
    assert normalize(arr).to_pylist() == two_pass_normalize(arr).to_pylist()


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A strong 64-bit finalizer: spreads the bits of a weak polynomial hash."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def arrow_words(texts: pa.Array, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The word split and word hash as they were written before the compiled pass (kernels.word_hashes):
    pyarrow's utf8_split_whitespace, then a polynomial hash of each distinct word's bytes in numpy.
    Stored signatures were computed from these values."""
    import pyarrow.compute as pc

    from instructlake.dedup.minhash import _string_parts

    words = pc.utf8_split_whitespace(pc.if_else(pc.equal(texts, ""), None, texts))
    row_off = words.offsets.to_numpy().astype(np.int64)
    enc = pc.dictionary_encode(words.flatten())
    offsets, data = _string_parts(enc.dictionary)
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    out = np.zeros(n, dtype=np.uint64)
    p = np.uint64(1099511628211 + 2 * seed)
    with np.errstate(over="ignore"):
        for i in range(n):  # Horner's rule: the sum of (byte + 1) * p^(bytes after it)
            for byte in data[offsets[i]: offsets[i + 1]]:
                out[i] = out[i] * p + np.uint64(byte) + np.uint64(1)
        out = out + lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    return row_off - row_off[0], _splitmix64(out)[enc.indices.to_numpy(zero_copy_only=False)]


# every code point utf8_split_whitespace splits on, and neighbours that share their first UTF-8 bytes
SPACES = [chr(c) for c in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0)] + \
    [chr(c) for c in range(0x2000, 0x200B)] + ["\u1680", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
NEAR_SPACES = ["\x08", "\x21", "\x84", "\xa1", "\u1681", "\u200b", "\u2027", "\u202a", "\u205e", "\u3001",
               "\u0a85", "é", "日", "🙂"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.sampled_from(SPACES + NEAR_SPACES), st.text(max_size=4)), max_size=10)
                .map("".join).map(lambda t: t.rstrip("".join(SPACES))), max_size=12), st.integers(0, 1000))
def test_the_compiled_word_pass_equals_arrows_split_and_hash(texts, seed):
    """Raw texts, not only normalized ones: empty texts, whitespace at the start, runs of mixed whitespace,
    and characters whose UTF-8 bytes start like a space's. Not whitespace at the end: there Arrow's own
    splitter reads past the string, and its words change with the bytes that follow (hypothesis found
    it flaky). normalize() trims every one of these characters at both ends, which the test below checks."""
    arr = pa.array(texts, pa.string())
    got_off, got_tok = MinHasher(seed=seed)._words(arr)
    want_off, want_tok = arrow_words(arr, seed)
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_tok, want_tok)


def test_the_word_pass_reads_a_sliced_array():
    arr = pa.array(["skip me", "a b", "", " c d "])
    got_off, got_tok = MinHasher()._words(arr.slice(1))
    want_off, want_tok = arrow_words(pa.array(["a b", "", " c d "]), 42)
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_tok, want_tok)


def test_normalized_texts_never_end_in_whitespace():
    texts = [f"{s}x{s}y{s}" for s in SPACES] + ["".join(SPACES), "日本" + "".join(SPACES)]
    for text in normalize(pa.array(texts)).to_pylist():
        assert text == text.strip("".join(SPACES)), repr(text)


@pytest.mark.parametrize("text", ["a ", "a  ", "a   ", " ", "  ", "    ", "a \u3000 ", "x\u2028\u2028\u2028",
                                  "\t\t"])
def test_the_word_pass_splits_whitespace_at_the_end_as_arrow_does_alone(text):
    """Whitespace at the end, one text per array: the bytes after it are Arrow's zero padding, so Arrow's
    split is stable (a run of two or more at the end gives one more empty word)."""
    arr = pa.array([text])
    got_off, got_tok = MinHasher()._words(arr)
    want_off, want_tok = arrow_words(arr, 42)
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_tok, want_tok)


def test_the_word_pass_handles_more_words_than_its_first_guess():
    """One-letter words: a word per two bytes, twice what the first buffer holds (one per four bytes)."""
    arr = pa.array(["a " * 3000 + "b", "c d", "日 本 語 " * 100 + "x"])
    got_off, got_tok = MinHasher()._words(arr)
    want_off, want_tok = arrow_words(arr, 42)
    assert want_off[-1] > len(arr.buffers()[2]) // 4 + 16
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_tok, want_tok)


def numpy_windows(row_off: np.ndarray, tok: np.ndarray, c: np.ndarray):
    """MinHasher._windows as it was written in numpy before kernels.window_hashes (the reference)."""
    counts = np.diff(row_off)
    n = len(c)
    windows = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
    rows = np.repeat(np.arange(len(counts)), windows)
    first = np.repeat(row_off[:-1], windows)
    starts = first + (np.arange(windows.sum()) - np.repeat(np.cumsum(windows) - windows, windows))
    padded = np.concatenate([tok, np.zeros(n, np.uint64)])
    with np.errstate(over="ignore"):
        run = padded[: len(tok)] * c[0]
        for j in range(1, n):
            run += padded[j: j + len(tok)] * c[j]
    h = run[starts] if len(tok) else np.zeros(0, np.uint64)
    short = np.flatnonzero(np.repeat(counts < n, windows))
    if len(short):
        wlen = np.repeat(counts, windows)[short]
        s0 = starts[short]
        hs = np.zeros(len(short), np.uint64)
        with np.errstate(over="ignore"):
            for j in range(n - 1):
                hs += np.where(j < wlen, padded[s0 + j] * c[j], np.uint64(0))
        h[short] = hs
    return rows, starts, _splitmix64(h)


def numpy_sequence_hash(row_off: np.ndarray, tok: np.ndarray, k: int) -> np.ndarray:
    """One half of _sequence_hashes as it was written in numpy before kernels.sequence_hash."""
    counts = np.diff(row_off)
    h = np.zeros(len(counts), np.uint64)
    if len(tok):
        pos = np.arange(len(tok)) - np.repeat(row_off[:-1], counts)
        with np.errstate(over="ignore"):
            weights = np.cumprod(np.full(int(counts.max()), np.uint64(k), dtype=np.uint64))
            contrib = _splitmix64(tok + np.uint64(k)) * weights[pos]
        nonempty = counts > 0
        h[nonempty] = np.add.reduceat(contrib, row_off[:-1][nonempty])
    with np.errstate(over="ignore"):
        return _splitmix64(h + counts.astype(np.uint64) * np.uint64(k))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 12), max_size=15), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_the_compiled_windows_and_sequence_hashes_equal_the_numpy_code(words_per_row, ngram, seed):
    """Rows of every length around the n-gram size, empty rows, and word hashes that wrap when weighted."""
    from instructlake.dedup.kernels import sequence_hash, window_hashes

    rng = np.random.default_rng(seed)
    row_off = np.r_[0, np.cumsum(words_per_row)].astype(np.int64)
    tok = rng.integers(0, 2**64, size=int(row_off[-1]), dtype=np.uint64)
    _, _, c = MinHasher(ngram=ngram, seed=seed % 1000)._params()
    for got, want in zip(window_hashes(row_off, tok, c), numpy_windows(row_off, tok, c), strict=True):
        np.testing.assert_array_equal(got, want)
    for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F):
        want = numpy_sequence_hash(row_off, tok, k)
        np.testing.assert_array_equal(sequence_hash(row_off, tok, np.uint64(k)), want)


def test_the_word_pass_reads_chunked_and_null_texts():
    chunked = pa.chunked_array([["a b", None], ["", " c d"]])
    got_off, got_tok = MinHasher()._words(chunked)
    want_off, want_tok = arrow_words(pa.array(["a b", "", "", " c d"]), 42)
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_tok, want_tok)
