"""Column contracts of every table. A stage checks its input with `require` and fails naming the column."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# Delta cannot enforce NOT NULL inside arrays, so nested fields are declared nullable; ingest guarantees them.
TURN = StructType([
    StructField("role", StringType(), True),  # user | assistant | tool
    StructField("content", StringType(), True),
])

SAMPLES = StructType([
    StructField("sample_id", StringType(), False),  # sha256 of the normalized conversation (32 hex)
    StructField("source", StringType(), False),
    StructField("source_id", StringType(), False),  # the record's own id, or file:line / file[index]
    StructField("conversation", ArrayType(TURN, True), False),
    StructField("system", StringType(), True),
    StructField("instruction", StringType(), False),  # first user turn
    StructField("n_turns", IntegerType(), False),
    StructField("lang", StringType(), True),
    StructField("chars", LongType(), False),
    # format-specific extras (tools, label, ...)
    StructField("meta", MapType(StringType(), StringType()), True),
    StructField("source_file", StringType(), False),
    StructField("format", StringType(), False),
    StructField("config_hash", StringType(), False),
    StructField("ingested_at", TimestampType(), False),
])

QUARANTINE = StructType([
    StructField("quarantine_id", StringType(), False),  # hash of (stage, file, locator, reason)
    StructField("stage", StringType(), False),
    StructField("source", StringType(), False),
    StructField("source_file", StringType(), False),
    StructField("locator", StringType(), False),  # line:N or index:N (or tree path) inside the file
    StructField("line", LongType(), True),
    StructField("reason", StringType(), False),  # a short code: json_parse_error, missing_field, ...
    StructField("detail", StringType(), True),  # human-readable: which field, what was wrong
    StructField("raw", StringType(), True),  # raw text, truncated to ingest.quarantine_raw_chars
    StructField("raw_length", LongType(), False),  # the raw text's original length in bytes
    StructField("quarantined_at", TimestampType(), False),
])

RUNS = StructType([
    StructField("run_id", StringType(), False),
    StructField("stage", StringType(), False),
    StructField("status", StringType(), False),  # ok | failed
    StructField("config_hash", StringType(), False),
    StructField("started_at", TimestampType(), False),
    StructField("finished_at", TimestampType(), False),
    StructField("seconds", DoubleType(), False),
    StructField("counts", MapType(StringType(), LongType()), False),
    StructField("input_versions", MapType(StringType(), LongType()), True),
    StructField("output_versions", MapType(StringType(), LongType()), True),
    StructField("args", StringType(), True),
    StructField("message", StringType(), True),
])

MINHASH_SIGNATURES = StructType([
    StructField("sample_id", StringType(), False),
    StructField("signature_hash", StringType(), False),  # hash of the settings the signature depends on
    StructField("exact_h1", LongType(), True),  # 128-bit hash of the normalized text, in two halves
    StructField("exact_h2", LongType(), True),
    StructField("n_tokens", IntegerType(), False),  # 0: nothing to match (empty after normalization)
    # num_perm uint32 minima, 4 little-endian bytes each (before: array<int>, which dedup converts)
    StructField("signature", BinaryType(), True),
    StructField("computed_at", TimestampType(), False),
])

DEDUP_CLUSTERS = StructType([
    StructField("sample_id", StringType(), False),
    StructField("cluster_id", StringType(), False),  # the smallest sample_id in the cluster
    # kept member: unique; a removed one: exact when another member has the same normalized text, else near
    StructField("method", StringType(), False),
    StructField("is_kept", BooleanType(), False),
    StructField("similarity", DoubleType(), False),  # estimated Jaccard to the kept member (1.0: exact)
    StructField("kept_id", StringType(), False),
    StructField("cluster_size", LongType(), False),
    StructField("config_hash", StringType(), False),
])

LLM_CACHE = StructType([
    # sha256 of (model, prompt_version, params_hash, prompt_hash)
    StructField("cache_key", StringType(), False),
    StructField("model", StringType(), False),
    StructField("prompt_version", StringType(), False),  # name/vN-<hash of the prompt file>
    StructField("params_hash", StringType(), False),  # sampling parameters, re-ask budget, JSON schema
    StructField("prompt_hash", StringType(), False),  # sha256 of the messages JSON
    StructField("messages", StringType(), False),  # the prompt as sent (JSON); never holds credentials
    StructField("response", StringType(), True),  # the last raw answer
    StructField("parsed", StringType(), True),  # the valid JSON answer; null when error is set
    StructField("error", StringType(), True),  # why the answer is unusable after the re-asks
    StructField("attempts", IntegerType(), False),
    StructField("prompt_tokens", LongType(), False),
    StructField("completion_tokens", LongType(), False),
    StructField("created_at", TimestampType(), False),
])

TAGS = StructType([
    StructField("sample_id", StringType(), False),
    StructField("tag", StringType(), True),  # null: the sample was tagged and got no tag (see error)
    StructField("explanation", StringType(), True),
    StructField("score", DoubleType(), True),  # zero-shot: cosine similarity to the tag; llm: null
    StructField("rank", IntegerType(), True),  # position of the tag in the answer (1 = first)
    StructField("tagger", StringType(), False),  # llm | zero-shot | distilled (tagging.distill's classifier)
    StructField("model", StringType(), False),
    # llm: the prompt's version; zero-shot: the taxonomy's
    StructField("prompt_version", StringType(), False),
    StructField("config_hash", StringType(), False),
    # why a sample has no tags (invalid answer, backend failure, none above threshold)
    StructField("error", StringType(), True),
    StructField("tagged_at", TimestampType(), False),
])

# tagging.distill: how often its classifier agrees with the LLM, per tag, on the held-out LLM-tagged samples
TAG_AGREEMENT = StructType([
    StructField("tag", StringType(), False),
    StructField("support", LongType(), False),  # held-out samples the LLM gave the tag
    StructField("predicted", LongType(), False),  # held-out samples the classifier gave it
    StructField("agreed", LongType(), False),  # both
    StructField("precision", DoubleType(), True),  # null: never predicted
    StructField("recall", DoubleType(), True),  # null: no support
    StructField("f1", DoubleType(), True),
    StructField("config_hash", StringType(), False),  # the tagging config
    StructField("measured_at", TimestampType(), False),
])

TAG_MAP = StructType([
    StructField("raw_tag", StringType(), False),
    StructField("canonical_tag", StringType(), True),  # null: a rare tag, dropped as noise
    StructField("cluster", StringType(), True),  # named after the cluster's most frequent canonical tag
    StructField("category", StringType(), True),  # one of the taxonomy's 25 categories
    StructField("freq", LongType(), False),  # samples with the raw tag
    StructField("similarity", DoubleType(), True),  # cosine of the raw tag to its canonical tag
    StructField("status", StringType(), False),  # canonical | merged | rare
    StructField("config_hash", StringType(), False),
])

TAG_STATS = StructType([
    StructField("canonical_tag", StringType(), False),
    StructField("category", StringType(), True),
    StructField("frequency", LongType(), False),  # distinct samples with the tag
    StructField("n_sources", LongType(), False),
    StructField("freq_per_source", MapType(StringType(), LongType()), False),
    StructField("config_hash", StringType(), False),
])

TAG_EDGES = StructType([
    StructField("tag_a", StringType(), False),  # tag_a < tag_b
    StructField("tag_b", StringType(), False),
    StructField("weight", LongType(), False),  # samples holding both
    StructField("pmi", DoubleType(), True),  # log(weight * N / (freq_a * freq_b))
    StructField("config_hash", StringType(), False),
])

TAG_DEGREES = StructType([
    StructField("tag", StringType(), False),
    StructField("category", StringType(), True),
    StructField("frequency", LongType(), False),  # samples with the tag (after the per-sample cap)
    StructField("degree", LongType(), False),  # distinct co-occurring tags
    StructField("weighted_degree", LongType(), False),  # sum of edge weights
    StructField("component", StringType(), False),  # smallest tag in its connected component
    StructField("config_hash", StringType(), False),
])

POWERLAW_FIT = StructType([
    StructField("target", StringType(), False),  # degree | tag_frequency
    StructField("n", LongType(), False),
    StructField("gamma", DoubleType(), False),
    StructField("xmin", LongType(), False),
    StructField("ks_d", DoubleType(), False),
    StructField("n_tail", LongType(), False),
    StructField("p_value", DoubleType(), True),  # bootstrap goodness of fit; null when not computed
    StructField("bootstrap", LongType(), False),
    # log-likelihood ratio, normalized; > 0 favours the power law
    StructField("lognormal_r", DoubleType(), False),
    StructField("lognormal_p", DoubleType(), False),
    StructField("exponential_r", DoubleType(), False),
    StructField("exponential_p", DoubleType(), False),
    StructField("verdict", StringType(), False),
    StructField("config_hash", StringType(), False),
    StructField("computed_at", TimestampType(), False),
])

SCORES = StructType([
    StructField("sample_id", StringType(), False),
    StructField("model", StringType(), False),
    StructField("loss_cond", DoubleType(), True),  # mean token loss of the response given its context
    StructField("loss_uncond", DoubleType(), True),  # ... of the response alone
    StructField("ifd", DoubleType(), True),  # loss_cond / loss_uncond
    StructField("loss_reduction", DoubleType(), True),  # loss_uncond - loss_cond
    StructField("n_tokens", IntegerType(), False),  # response tokens scored
    StructField("response_bytes", IntegerType(), False),  # UTF-8 bytes of those tokens
    StructField("loss_cond_per_byte", DoubleType(), True),  # loss_cond * n_tokens / response_bytes
    StructField("truncated", BooleanType(), False),
    StructField("error", StringType(), True),
    StructField("config_hash", StringType(), False),
    StructField("scored_at", TimestampType(), False),
])

SEEDS = StructType([
    StructField("sample_id", StringType(), False),
    # long_tail, multi_skill, hard, undertrained
    StructField("criteria", ArrayType(StringType(), False), False),
    # the values that triggered each criterion and the thresholds they crossed
    StructField("evidence", MapType(StringType(), DoubleType()), False),
    StructField("config_hash", StringType(), False),
    StructField("selected_at", TimestampType(), False),
])

EMBEDDINGS = StructType([
    StructField("sample_id", StringType(), False),
    StructField("model", StringType(), False),  # embed.model
    StructField("vector", ArrayType(FloatType(), True), False),  # of the instruction, L2-normalized
    StructField("embedded_at", TimestampType(), False),
])

BENCHMARKS = StructType([
    StructField("benchmark", StringType(), False),  # the name given with --benchmark NAME=PATH
    StructField("item_id", StringType(), False),  # the record's own id (question_id, id, ...) or its index
    StructField("prompt", StringType(), False),
    StructField("source_file", StringType(), False),
    StructField("loaded_at", TimestampType(), False),
])

CONTAMINATION = StructType([
    StructField("sample_id", StringType(), False),
    StructField("benchmark", StringType(), False),
    StructField("item_id", StringType(), False),
    StructField("cosine", DoubleType(), True),  # instruction embedding vs the prompt's (null: not compared)
    StructField("ngram_shared", IntegerType(), False),  # distinct word n-grams the two share
    StructField("ngram_ratio", DoubleType(), False),  # shared / the prompt's distinct n-grams
    StructField("ngram_example", StringType(), True),  # one shared n-gram, normalized
    # embedding and/or ngram; empty: not flagged
    StructField("methods", ArrayType(StringType(), True), False),
    StructField("flagged", BooleanType(), False),
    StructField("config_hash", StringType(), False),
    StructField("checked_at", TimestampType(), False),
])

EVOLVED = StructType([
    StructField("evolution_id", StringType(), False),  # hash of (parent, round, k, config hash)
    StructField("parent_id", StringType(), False),  # a sample_id (round 1) or an evolution_id (later rounds)
    StructField("seed_id", StringType(), False),  # the seed sample at the root of the chain
    StructField("round", IntegerType(), False),
    StructField("k", IntegerType(), False),  # which of the parent's evolutions in this round
    StructField("strategy", StringType(), False),  # reasoning | concretizing | deepening | diversifying
    StructField("instruction", StringType(), True),  # the evolved instruction (null: no usable answer)
    StructField("status", StringType(), False),  # valid | rejected
    StructField("reason", StringType(), True),  # why it was rejected (rule or judge), or the judge's reason
    StructField("judge_score", DoubleType(), True),
    # the synthesized sample in `samples` once it has a response
    StructField("sample_id", StringType(), True),
    StructField("model", StringType(), False),
    StructField("judge_model", StringType(), False),
    StructField("prompt_version", StringType(), False),
    StructField("config_hash", StringType(), False),
    StructField("created_at", TimestampType(), False),
])

DIFFICULTY = StructType([
    StructField("sample_id", StringType(), False),
    StructField("difficulty", IntegerType(), True),  # 1 (trivial) .. 10 (expert); null: no usable rating
    StructField("rationale", StringType(), True),
    StructField("error", StringType(), True),
    StructField("model", StringType(), False),
    StructField("prompt_version", StringType(), False),
    StructField("config_hash", StringType(), False),
    StructField("rated_at", TimestampType(), False),
])

DIAGNOSIS = StructType([
    StructField("diagnosis_set", StringType(), False),
    StructField("iteration", IntegerType(), False),  # one per diagnose run on this set
    StructField("item_id", StringType(), False),
    StructField("instruction", StringType(), False),
    StructField("reference", StringType(), False),
    StructField("answer", StringType(), True),  # the model under test's answer (null: none usable)
    StructField("deficient", BooleanType(), True),
    StructField("skill", StringType(), True),  # the abstract skill it lacks, when deficient
    StructField("explanation", StringType(), True),
    StructField("model", StringType(), False),
    StructField("judge_model", StringType(), False),
    StructField("config_hash", StringType(), False),
    StructField("diagnosed_at", TimestampType(), False),
])

INGESTED_FILES = StructType([
    StructField("path", StringType(), False),
    StructField("size", LongType(), False),
    StructField("modified", LongType(), False),  # mtime, seconds
    StructField("config_hash", StringType(), False),  # ingest config it was read under
    StructField("run_id", StringType(), False),
    StructField("ingested_at", TimestampType(), False),
])

QUALITY = StructType([
    StructField("sample_id", StringType(), False),
    StructField("lang", StringType(), False),  # the conversation's language (ISO 639-1), or und
    StructField("lang_confidence", DoubleType(), False),
    StructField("turn_langs", ArrayType(StringType(), True), True),  # each turn's language, in order
    StructField("signals", MapType(StringType(), DoubleType()), False),  # the measures, by name
    StructField("passed", BooleanType(), False),
    StructField("reasons", ArrayType(StringType(), True), False),  # why it failed (empty: passed)
    # the filter config and signals' VERSION of this verdict: one per sample, the latest (pool.py)
    StructField("config_hash", StringType(), False),
    StructField("checked_at", TimestampType(), False),
])

PII = StructType([
    StructField("sample_id", StringType(), False),
    StructField("counts", MapType(StringType(), IntegerType()), False),  # values replaced by kind (EMAIL...)
    StructField("found", IntegerType(), False),  # all kinds together
    # the sample's turns and system prompt with placeholders; null when nothing was found
    StructField("conversation", ArrayType(TURN, True), True),
    StructField("system", StringType(), True),
    # the scrub config and detectors' VERSION of this check: one row per sample, the latest
    StructField("config_hash", StringType(), False),
    StructField("checked_at", TimestampType(), False),
])

SOURCES = StructType([  # ingest --license: the license every sample of a source carries
    StructField("source", StringType(), False),
    StructField("license", StringType(), False),
    StructField("recorded_at", TimestampType(), False),
])

TABLES: dict[str, StructType] = {
    "samples": SAMPLES, "quarantine": QUARANTINE, "runs": RUNS,
    "minhash_signatures": MINHASH_SIGNATURES, "dedup_clusters": DEDUP_CLUSTERS,
    "llm_cache": LLM_CACHE, "tags": TAGS, "tag_agreement": TAG_AGREEMENT, "tag_map": TAG_MAP,
    "tag_stats": TAG_STATS,
    "tag_edges": TAG_EDGES, "tag_degrees": TAG_DEGREES, "powerlaw_fit": POWERLAW_FIT,
    "scores": SCORES, "seeds": SEEDS, "embeddings": EMBEDDINGS, "benchmarks": BENCHMARKS,
    "contamination": CONTAMINATION, "evolved": EVOLVED, "difficulty": DIFFICULTY,
    "diagnosis": DIAGNOSIS, "ingested_files": INGESTED_FILES, "quality": QUALITY, "pii": PII,
    "sources": SOURCES,
}
KEYS: dict[str, list[str]] = {
    "samples": ["sample_id"], "quarantine": ["quarantine_id"], "runs": ["run_id"],
    "minhash_signatures": ["sample_id", "signature_hash"], "dedup_clusters": ["sample_id"],
    "llm_cache": ["cache_key"], "tags": ["sample_id", "config_hash", "tag"],
    "tag_agreement": ["tag", "config_hash"], "tag_map": ["raw_tag"], "tag_stats": ["canonical_tag"],
    "tag_edges": ["tag_a", "tag_b"], "tag_degrees": ["tag"], "powerlaw_fit": ["target"],
    "scores": ["sample_id", "config_hash"], "seeds": ["sample_id"], "embeddings": ["sample_id", "model"],
    "benchmarks": ["benchmark", "item_id"], "contamination": ["sample_id", "benchmark", "item_id", "config_hash"],
    "evolved": ["evolution_id"], "difficulty": ["sample_id", "config_hash"],
    "diagnosis": ["diagnosis_set", "iteration", "item_id"],
    "ingested_files": ["path", "size", "modified", "config_hash"], "quality": ["sample_id"],
    "pii": ["sample_id"], "sources": ["source"],
}


class SchemaError(ValueError):
    """A DataFrame lacks a column a stage needs, or has it with the wrong type."""


def require(df, table: str, columns: list[str] | None = None) -> None:
    """Check that `df` has the named columns of `table`'s contract (all of them by default) with their types."""
    contract = TABLES[table]
    wanted = columns or contract.fieldNames()
    have = {f.name: f.dataType for f in df.schema.fields}
    for name in wanted:
        if name not in have:
            raise SchemaError(f"{table}: missing column {name!r} (has: {', '.join(have)})")
        expected = contract[name].dataType
        if _strip_nullability(have[name]) != _strip_nullability(expected):
            raise SchemaError(f"{table}: column {name!r} is {have[name].simpleString()}, "
                              f"expected {expected.simpleString()}")


def _strip_nullability(t):
    return t.simpleString()
