"""The tagging-side sections of the semantic config besides `tagging` itself: LLM tagging at pool scale
(tagging.distill), tag normalization and the co-occurrence graph."""

from __future__ import annotations

from dataclasses import dataclass

from instructlake.errors import ConfigError


@dataclass(frozen=True)
class DistillConfig:
    # The share of the samples to tag that the LLM tags itself: 0 (off: the LLM tags every sample), a
    # fraction below 1, or a count of samples (>= 1). Chosen by a hash of the sample id, so a re-run picks
    # the same ones. The rest are tagged by a kNN classifier over the LLM-tagged samples' embeddings.
    sample: float = 0.0
    # Of the LLM-tagged samples, this share is held back from the classifier to measure its agreement with
    # the LLM (per tag in `tag_agreement`, micro precision/recall/F1 in the run record).
    holdout: float = 0.2
    # A tag the LLM gave fewer LLM-tagged samples than this is not learned (too few examples).
    min_examples: int = 3
    # The classifier: the k nearest LLM-tagged samples vote, each with its cosine; a tag is given when its
    # share of the votes reaches min_vote, at most max_tags per sample, best first.
    k: int = 10
    min_vote: float = 0.4
    max_tags: int = 8

    def __post_init__(self) -> None:
        if self.sample < 0:
            raise ConfigError(f"tagging.distill.sample must be >= 0 (0: off), not {self.sample}")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"tagging.distill.holdout must be between 0 and 1, not {self.holdout}")
        if min(self.min_examples, self.k, self.max_tags) < 1 or not 0 < self.min_vote <= 1:
            raise ConfigError("tagging.distill: min_examples, k and max_tags must be >= 1, "
                              "min_vote in (0, 1]")

    @property
    def on(self) -> bool:
        return self.sample > 0

    def teacher_share(self, n: int) -> float:
        """The share of n samples the LLM tags: the fraction as set, or the count over n (at most all)."""
        return min(1.0, self.sample if self.sample < 1 else self.sample / max(1, n))


@dataclass(frozen=True)
class TagNormConfig:
    # Tags used by fewer samples than min_freq are noise and map to no canonical tag. The paper drops
    # tags under 100 samples in a pool of ~7M; unset (null), the cut is that rate applied to the pool
    # tagged (min_freq_per_million samples, at least 1), so a 700-sample pool keeps its tags and a
    # 7M-sample one cuts at 100. A min_freq that is set wins.
    min_freq: int | None = None
    min_freq_per_million: float = 100 / 7
    # Tags whose embeddings have cosine >= merge_threshold are synonyms: merged into the most frequent (λ).
    merge_threshold: float = 0.91
    # DBSCAN over the merged tags' embeddings (cosine distance) groups related tags; eps as in the paper.
    dbscan_eps: float = 0.47
    dbscan_min_samples: int = 2
    # Each cluster goes to the category whose "name: description" embedding is nearest to its centroid;
    # a canonical tag from the packaged taxonomy keeps its own category.
    taxonomy_categories: bool = True

    def __post_init__(self) -> None:
        if self.min_freq is not None and self.min_freq < 1:
            raise ConfigError(f"normalize_tags.min_freq must be >= 1 (or null: scale with the pool), "
                              f"not {self.min_freq}")
        if self.min_freq_per_million < 0:
            raise ConfigError("normalize_tags.min_freq_per_million must be >= 0")
        if not 0 < self.merge_threshold <= 1 or self.dbscan_eps <= 0:
            raise ConfigError("normalize_tags: 0 < merge_threshold <= 1 and dbscan_eps > 0 are required")

    def cut_for(self, pool: int) -> int:
        """The frequency cut for a pool of `pool` tagged samples: min_freq when set, else the rate."""
        if self.min_freq is not None:
            return self.min_freq
        return max(1, round(self.min_freq_per_million * pool / 1e6))


@dataclass(frozen=True)
class GraphConfig:
    # A sample contributes pairs among at most this many of its tags (its best-ranked ones): at most
    # k(k-1)/2 edges per sample, however many tags it has.
    max_tags_per_sample: int = 12
    # Semi-parametric bootstrap rounds for the power-law p-value (0: no p-value; 100+ for a firm one).
    bootstrap: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_tags_per_sample < 2 or self.bootstrap < 0:
            raise ConfigError("graph.max_tags_per_sample must be >= 2 and graph.bootstrap >= 0")
