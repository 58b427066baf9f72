"""The tagging-side sections of the semantic config: `tagging` and its LLM tagging at pool scale
(tagging.distill), tag normalization and the co-occurrence graph."""

from __future__ import annotations

from dataclasses import dataclass, field

from instructlake.config_llm import LLMConfig
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


@dataclass(frozen=True)
class TaggingConfig:
    # auto: the LLM tagger when tagging.llm.backend is set, else the zero-shot embedding tagger.
    tagger: str = "auto"
    llm: LLMConfig = field(default_factory=LLMConfig)
    # Only samples that dedup kept (and samples not deduplicated yet) are tagged.
    only_kept: bool = True
    # The instruction (first user turn) is cut to this many characters in the prompt.
    max_instruction_chars: int = 4000
    # Zero-shot, two-level (the default): each category is scored by the instruction's nearest exemplars
    # (resources/category_exemplars.yaml; the mean cosine of the exemplar_k nearest, weighted
    # exemplar_weight) and by its own description and best two tags (the rest of the weight); up to
    # max_categories categories within category_margin of the best are kept, then in each up to
    # tags_per_category tags within tag_margin of the category's best tag, at most max_tags in all. When the
    # kept categories are all tasks (or all domains; taxonomy.yaml's facet), the best of the other facet is
    # added if it scores within pair_margin of the best category (0: never). With head_paragraph, a prompt
    # whose first paragraph is followed by more (an instruction, then its input) is scored on that
    # paragraph as well, each category and tag keeping the better of the two scores: a long input passage
    # does not drown the task its first line asks for. With labelled_exemplars, the labelled prompts in
    # resources/labelled_exemplars.jsonl are exemplars too, of every category a reader accepts for them.
    zero_shot: str = "two-level"
    exemplar_weight: float = 0.5
    exemplar_k: int = 2
    labelled_exemplars: bool = True
    max_categories: int = 3
    category_margin: float = 0.1
    pair_margin: float = 0.05
    head_paragraph: bool = True
    tags_per_category: int = 2
    tag_margin: float = 0.03
    max_tags: int = 8
    # Zero-shot, flat (the earlier tagger): up to top_k taxonomy tags whose cosine similarity to the
    # instruction is at least min_similarity and within `margin` of its best tag.
    top_k: int = 3
    min_similarity: float = 0.25
    margin: float = 0.08
    # Open tags besides the taxonomy's (tagging/open_tags.py): the intent ("poem writing") and up to
    # open_tags knowledge phrases of the instruction ("french revolution"); normalize-tags cuts, merges
    # and clusters them as the paper's normalization does. 0 and false turn them off.
    open_tags: int = 3
    open_intent: bool = True
    # LLM tagging at pool scale: the LLM tags a sample of the pool, a kNN classifier over embeddings
    # learns its tags and tags the rest (config_tagging.DistillConfig; off by default).
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if self.tagger not in ("auto", "llm", "zero-shot"):
            raise ConfigError(f"tagging.tagger must be auto, llm or zero-shot, not {self.tagger!r}")
        if self.tagger == "llm" and self.llm.backend == "none":
            raise ConfigError("tagging.tagger = llm needs tagging.llm.backend and tagging.llm.model")
        if self.top_k < 1:
            raise ConfigError("tagging.top_k must be >= 1")
        if self.open_tags < 0:
            raise ConfigError(f"tagging.open_tags must be >= 0 (0: no knowledge phrases), "
                              f"not {self.open_tags}")
        if self.zero_shot not in ("two-level", "flat"):
            raise ConfigError(f"tagging.zero_shot must be two-level or flat, not {self.zero_shot!r}")
        if min(self.exemplar_k, self.max_categories, self.tags_per_category, self.max_tags) < 1:
            raise ConfigError("tagging: exemplar_k, max_categories, tags_per_category and max_tags must be "
                              ">= 1")
        if not 0 <= self.exemplar_weight <= 1:
            raise ConfigError(f"tagging.exemplar_weight must be in [0, 1], not {self.exemplar_weight}")
        if self.pair_margin < 0:
            raise ConfigError(f"tagging.pair_margin must be >= 0 (0: no pairing of a task and a domain), "
                              f"not {self.pair_margin}")

    @property
    def open_tags_on(self) -> bool:
        """Whether the zero-shot tagger adds open tags (an intent, phrases or both)."""
        return bool(self.open_tags or self.open_intent)

    @property
    def kind(self) -> str:
        if self.tagger == "auto":
            return "llm" if self.llm.backend != "none" else "zero-shot"
        return self.tagger
