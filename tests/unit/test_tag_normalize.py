"""Tag normalization on constructed vectors: synonym merging, noise, clusters and categories."""

from __future__ import annotations

import numpy as np

from instructlake.config import TagNormConfig
from instructlake.tagging.normalize import cluster_tags, merge_synonyms, normalize


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def around(base, noise, rng):
    return unit(base + noise * rng.standard_normal(len(base)))


def test_merge_goes_to_the_most_frequent_member():
    v = np.stack([unit([1, 0.05, 0]), unit([1, 0, 0]), unit([0, 1, 0]), unit([1, 0.02, 0.01])])
    canon, sim = merge_synonyms(v, np.array([5, 50, 9, 5]), ["b", "a", "c", "d"], threshold=0.99)
    assert canon.tolist() == [1, 1, 2, 1]
    assert sim[1] == 1.0 and 0.99 <= sim[0] < 1.0


def test_merge_is_not_transitive_beyond_the_head():
    # b is close to a and c is close to b, but c is not close to a: c stays its own canonical tag
    a, b, c = unit([1, 0, 0]), unit([1, 0.3, 0]), unit([1, 0.6, 0])
    canon, _ = merge_synonyms(np.stack([a, b, c]), np.array([10, 5, 1]), ["a", "b", "c"], threshold=0.95)
    assert canon.tolist() == [0, 0, 2]


def test_dbscan_groups_and_singletons():
    rng = np.random.default_rng(0)
    x, y = np.eye(8)[0], np.eye(8)[1]
    v = np.stack([around(x, 0.1, rng) for _ in range(4)] + [around(y, 0.1, rng) for _ in range(3)] + [unit(np.eye(8)[5])])
    labels = cluster_tags(v, np.ones(8), eps=0.2, min_samples=2)
    assert len(set(labels[:4])) == 1 and len(set(labels[4:7])) == 1 and labels[0] != labels[4]
    assert labels[7] not in set(labels[:7])  # DBSCAN's noise point is a cluster of its own


def test_normalize_end_to_end_on_constructed_tags():
    rng = np.random.default_rng(1)
    code, write, rare = np.eye(16)[0], np.eye(16)[1], np.eye(16)[7]
    names = ["python programming", "python programing", "java programming", "poetry writing", "poem writting",
             "obscure thing"]
    freqs = [300, 120, 150, 200, 110, 3]
    vec = np.stack([unit(code), around(code, 0.02, rng), unit(code + 0.7 * np.eye(16)[2]),
                    unit(write), around(write, 0.02, rng), unit(rare)])
    cats = ["programming", "creative writing"]
    cat_vec = np.stack([unit(code + 0.3 * np.eye(16)[3]), unit(write + 0.3 * np.eye(16)[4])])
    cfg = TagNormConfig(min_freq=100, merge_threshold=0.95, dbscan_eps=0.47, dbscan_min_samples=2)
    out = {m.raw_tag: m for m in normalize(names, freqs, vec, cfg, cats, cat_vec, taxonomy_category={})}
    assert out["obscure thing"].status == "rare" and out["obscure thing"].canonical_tag is None
    assert out["python programing"].canonical_tag == "python programming" and out["python programing"].status == "merged"
    assert out["poem writting"].canonical_tag == "poetry writing"
    assert out["java programming"].canonical_tag == "java programming"  # related, not a synonym
    assert out["java programming"].cluster == out["python programming"].cluster == "python programming"
    assert out["python programming"].category == "programming" and out["poetry writing"].category == "creative writing"
    # a taxonomy tag keeps its own category whatever its cluster says
    out = {m.raw_tag: m for m in normalize(names, freqs, vec, cfg, cats, cat_vec,
                                            taxonomy_category={"java programming": "software engineering"})}
    assert out["java programming"].category == "software engineering"
