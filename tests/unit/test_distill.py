"""tagging.distill's classifier and agreement, on hand-made vectors and tag sets."""

from __future__ import annotations

import numpy as np
import pytest

from instructlake.config_tagging import DistillConfig
from instructlake.errors import ConfigError
from instructlake.tagging.distill import Learned, agreement, measure, prf, vote


def unit(*xs):
    v = np.asarray(xs, np.float32)
    return v / np.linalg.norm(v)


def test_the_nearest_vote_with_their_cosines():
    refs = np.stack([unit(1, 0), unit(1, 0.1), unit(0, 1), unit(0.1, 1)])
    labels = [[0], [0, 1], [2], [2]]
    got = vote(np.stack([unit(1, 0.05), unit(0.05, 1)]), refs, labels, k=2, min_vote=0.4, max_tags=8)
    assert [t for t, _ in got[0]] == [0, 1] and got[0][0][1] == pytest.approx(1.0)
    assert 0.4 < got[0][1][1] < 0.6  # one of the two neighbours, weighted by its cosine
    assert got[1] == [(2, pytest.approx(1.0))]
    # a stricter share keeps only the tag both neighbours give; max_tags bounds the rest
    assert [t for t, _ in vote(refs[:1], refs, labels, k=2, min_vote=0.9, max_tags=8)[0]] == [0]
    assert len(vote(refs[:1], refs, labels, k=4, min_vote=0.01, max_tags=1)[0]) == 1


def test_no_references_and_opposite_vectors_give_no_tags():
    q = np.stack([unit(1, 0)])
    assert vote(q, np.zeros((0, 2), np.float32), [], 3, 0.4, 8) == [[]]
    assert vote(q, np.stack([unit(-1, 0)]), [[0]], 3, 0.4, 8) == [[]]  # a negative cosine casts no vote


def test_agreement_counts_per_tag_and_prf():
    truth = [{"a", "b"}, {"a"}, set(), {"c"}]
    pred = [{"a"}, {"a", "b"}, {"b"}, set()]
    per = agreement(truth, pred)
    assert per == {"a": (2, 2, 2), "b": (1, 2, 0), "c": (1, 0, 0)}
    assert prf(*per["a"]) == (1.0, 1.0, 1.0)
    assert prf(*per["c"]) == (None, 0.0, 0.0)
    assert prf(0, 0, 0) == (None, None, None)
    s, p, a = (sum(v[i] for v in per.values()) for i in range(3))
    assert prf(s, p, a) == pytest.approx((0.5, 0.5, 0.5))


def test_rare_tags_are_not_learned_and_held_out_samples_are_not_references():
    vecs = np.stack([unit(1, 0)] * 3 + [unit(0, 1)] * 3)
    tags = [{"x"}, {"x"}, {"x", "rare"}, {"y"}, {"y"}, {"y"}]
    learned = Learned(vecs, tags, min_examples=2)
    assert learned.vocab == ["x", "y"]
    cfg = DistillConfig(sample=0.5, k=2, min_vote=0.5, min_examples=2)
    assert learned.predict(np.stack([unit(0, 1)]), cfg) == [[("y", pytest.approx(1.0))]]
    # the held-out sample of each group is tagged by the other two only: both agree with the LLM
    per = measure(vecs, tags, [False, False, True, False, False, True], cfg)
    assert per == {"x": (1, 1, 1), "y": (1, 1, 1)}  # "rare" was never learned, so it is not counted
    assert measure(vecs, tags, [True] * 6, cfg) == {}  # nothing left to learn from


def test_config():
    assert not DistillConfig().on and DistillConfig(sample=0.1).on
    assert DistillConfig(sample=0.25).teacher_share(1000) == 0.25
    assert DistillConfig(sample=100).teacher_share(1000) == 0.1
    assert DistillConfig(sample=5000).teacher_share(1000) == 1.0
    for bad in ({"sample": -1}, {"holdout": 0}, {"holdout": 1}, {"k": 0}, {"min_vote": 0}):
        with pytest.raises(ConfigError):
            DistillConfig(**bad)
