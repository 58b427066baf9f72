"""The numpy matchers of decontamination: n-gram hits and cosine candidates, on constructed cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from instructlake.decontam.match import NgramIndex, as_matrix, cosine_candidates, ngram_hits
from instructlake.decontam.semdedup import pairs_above

PROMPTS = [
    "Write a detailed essay about the causes and consequences of the French Revolution in Europe today.",
    "Tell me a joke.",
    "Write a detailed essay about the causes and consequences of the French Revolution and its wars.",
]


def hits(texts, n=13):
    r, i, shared, ex = ngram_hits(pa.array(texts, pa.string()), NgramIndex.build(PROMPTS, n))
    return {(int(a), int(b)): (int(s), e) for a, b, s, e in zip(r, i, shared, ex, strict=True)}


def test_ngram_hits_count_distinct_shared_ngrams_per_prompt():
    copy = "Please help: " + PROMPTS[0].upper() + " Thanks."  # case and punctuation do not matter
    got = hits([copy, "nothing in common here at all", "tell me a joke", "Tell me a joke about cats."])
    # the copy shares all 4 of prompt 0's 13-grams, and the 13-grams of the common opening with prompt 2
    assert got[(0, 0)][0] == 4 and got[(0, 0)][1].startswith("write a detailed essay")
    assert got[(0, 2)][0] == 1 and got[(0, 2)][1] == ("write a detailed essay about the causes and "
                                                      "consequences of the french revolution")
    assert (1, 0) not in got and (1, 1) not in got
    assert got[(2, 1)] == (1, "tell me a joke")  # a prompt shorter than n words: its whole text is one n-gram
    assert (3, 1) not in got  # ... which a longer sample does not share


def test_ngram_hits_count_a_repeated_ngram_once():
    twice = PROMPTS[0] + " " + PROMPTS[0]
    assert hits([twice])[(0, 0)][0] == 4


def test_cosine_candidates_best_per_benchmark_and_top_k_above_threshold():
    rng = np.random.default_rng(0)
    bench = rng.normal(size=(10, 16)).astype(np.float32)
    bench /= np.linalg.norm(bench, axis=1, keepdims=True)
    of_item = np.array([0] * 6 + [1] * 4)
    near = bench[[0, 1, 2, 7]] + 0.01
    samples = np.vstack([near.mean(0, keepdims=True) * 0 + bench[0], bench[7]])
    r, i, c = cosine_candidates(samples, bench, of_item, 2, 0.99, top_k=1)
    pairs = set(zip(r.tolist(), i.tolist(), strict=True))
    # each row: its best item in each benchmark (even far below the threshold), plus matches >= 0.99
    assert (0, 0) in pairs and (1, 7) in pairs
    assert {row for row, _ in pairs} == {0, 1} and len({(row, int(of_item[it])) for row, it in pairs}) == 4
    r2, i2, c2 = cosine_candidates(np.vstack([bench[0]] * 3), np.vstack([bench[0]] * 5), np.zeros(5, int), 1, 0.5,
                                   top_k=2)
    per_row = np.bincount(r2)
    assert (per_row == 3).all()  # best + top 2 (the best is among them: deduplicated downstream)
    assert as_matrix(pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))).shape == (2, 2)


def test_pairs_above_is_blockwise_and_upper_triangular(monkeypatch):
    import instructlake.decontam.semdedup as sd

    monkeypatch.setattr(sd, "BLOCK", 3)  # force several tiles
    v = np.eye(7, dtype=np.float32)
    v[5] = v[1]
    v[6] = v[1]
    i, j, c = pairs_above(v, 0.9)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(1, 5), (1, 6), (5, 6)]
    assert np.allclose(c, 1.0)
