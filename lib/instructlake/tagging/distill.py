"""tagging.distill: LLM tagging at pool scale.

The paper tags 7M samples with a 72B model; at that size the LLM is the cost. With `tagging.distill.sample`
set, the LLM tags only a sample of the samples to tag (chosen by a hash of the sample id), and a
classifier learns its tags from them and tags the rest:

1. teacher: the LLM tagger on the chosen samples (through the LLM cache, as without distillation); its
   rows are kept as `tagger = llm`;
2. classifier: kNN over the embedder's vectors of every LLM-tagged sample under this tagging config (this
   run's and earlier runs'): the k nearest vote with their cosine; a tag that holds min_vote of the votes
   is given, best first. Tags the LLM gave fewer than min_examples samples are not learned;
3. agreement: a hash-chosen `holdout` share of the LLM-tagged samples is tagged by a classifier of the rest
   and compared with the LLM's tags: per tag into `tag_agreement` (support, predicted, agreed, precision,
   recall, F1), micro totals into the run record (distill_holdout_*);
4. student: the classifier of all LLM-tagged samples tags the other samples (`tagger = distilled`,
   score = the tag's share of the votes). A sample no tag reaches min_vote for gets one row with a null
   tag and the reason, as the other taggers do.

The tags learned are the LLM's raw tags as stored (lower case, trimmed); normalize-tags then maps the
LLM's and the classifier's alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake import schemas
from instructlake.config import Config
from instructlake.frames import rows_frame
from instructlake.store import Store

log = logging.getLogger(__name__)

_SCALE = 1_000_000


def hashed_share(salt: str, share: float) -> Column:
    """True for about `share` of the sample ids, the same ones every run."""
    bucket = F.pmod(F.xxhash64(F.lit(salt), F.col("sample_id")), F.lit(_SCALE))
    return bucket < F.lit(int(round(share * _SCALE)))


def vote(queries: np.ndarray, refs: np.ndarray, labels: list[list[int]], k: int, min_vote: float,
         max_tags: int) -> list[list[tuple[int, float]]]:
    """For each query vector: (tag index, vote share) of the tags its k nearest references (cosine of
    L2-normalized vectors, negative cosines counted as 0) give with a share >= min_vote, best first."""
    if len(refs) == 0 or len(queries) == 0:
        return [[] for _ in range(len(queries))]
    k = min(k, len(refs))
    sims = queries @ refs.T
    near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    out = []
    for q in range(len(queries)):
        w = np.clip(sims[q, near[q]], 0.0, None)
        total = float(w.sum())
        scores: dict[int, float] = {}
        for j, wj in zip(near[q], w, strict=True):
            for t in labels[j]:
                scores[t] = scores.get(t, 0.0) + float(wj)
        got = [(t, s / total) for t, s in scores.items() if total > 0 and s / total >= min_vote]
        out.append(sorted(got, key=lambda x: (-x[1], x[0]))[:max_tags])
    return out


def agreement(truth: list[set[str]], predicted: list[set[str]]) -> dict[str, tuple[int, int, int]]:
    """Per tag: (support: samples the LLM gave it, predicted: samples the classifier gave it, agreed)."""
    out: dict[str, list[int]] = {}
    for t_set, p_set in zip(truth, predicted, strict=True):
        for t in t_set | p_set:
            c = out.setdefault(t, [0, 0, 0])
            c[0] += t in t_set
            c[1] += t in p_set
            c[2] += t in t_set and t in p_set
    return {t: (a, b, c) for t, (a, b, c) in out.items()}


def prf(support: int, predicted: int, agreed: int) -> tuple[float | None, float | None, float | None]:
    p = agreed / predicted if predicted else None
    r = agreed / support if support else None
    f = 2 * agreed / (support + predicted) if support + predicted else None
    return p, r, f


class Learned:
    """The LLM-tagged samples a classifier learns from: vectors, tag indexes, the vocabulary."""

    def __init__(self, vectors: np.ndarray, tags: list[set[str]], min_examples: int):
        counts: dict[str, int] = {}
        for ts in tags:
            for t in ts:
                counts[t] = counts.get(t, 0) + 1
        self.vocab = sorted(t for t, n in counts.items() if n >= min_examples)
        index = {t: i for i, t in enumerate(self.vocab)}
        self.vectors = vectors
        self.labels = [[index[t] for t in sorted(ts) if t in index] for ts in tags]

    def predict(self, queries: np.ndarray, cfg) -> list[list[tuple[str, float]]]:
        picks = vote(queries, self.vectors, self.labels, cfg.k, cfg.min_vote, cfg.max_tags)
        return [[(self.vocab[i], s) for i, s in p] for p in picks]


def teacher_split(todo: DataFrame, config: Config, n_todo: int) -> tuple[DataFrame, DataFrame, float]:
    """(samples the LLM tags, samples the classifier tags, the share the LLM tags)."""
    share = config.tagging.distill.teacher_share(n_todo)
    pick = hashed_share("distill-teacher", share)
    return todo.filter(pick), todo.filter(~pick), share


def training_set(spark: SparkSession, store: Store, config: Config, fresh: DataFrame, chash: str,
                 texts: DataFrame) -> tuple[np.ndarray, list[set[str]], list[bool]]:
    """Every LLM-tagged sample under chash (earlier runs' rows and `fresh`, this run's): its vector, its
    tags and whether it is held out; in a fixed order (sample id)."""
    from instructlake.embed.spark_embed import embed

    tagged = fresh.select("sample_id", "tag", "tagger")
    if store.exists("tags"):
        tagged = tagged.unionByName(store.read("tags").filter(F.col("config_hash") == chash)
                                    .select("sample_id", "tag", "tagger"))
    per = (tagged.filter((F.col("tagger") == "llm") & F.col("tag").isNotNull())
           .groupBy("sample_id").agg(F.array_sort(F.collect_set("tag")).alias("tags"))
           .join(texts, "sample_id")
           .withColumn("held", hashed_share("distill-holdout", config.tagging.distill.holdout)))
    vecs = embed(spark, per, "text", config.embed, config.platform.embed, keep=("sample_id", "tags", "held"))
    rows = sorted(vecs.collect(), key=lambda r: r["sample_id"])
    if not rows:
        return np.zeros((0, 0), np.float32), [], []
    return (np.stack([np.asarray(r["vector"], np.float32) for r in rows]), [set(r["tags"]) for r in rows],
            [bool(r["held"]) for r in rows])


def measure(vectors: np.ndarray, tags: list[set[str]], held: list[bool],
            cfg) -> dict[str, tuple[int, int, int]]:
    """Per-tag agreement of a classifier of the kept-in samples with the LLM on the held-out ones
    (tags the classifier could learn only)."""
    keep = np.asarray([not h for h in held], bool)
    if not keep.any() or keep.all():
        return {}
    learned = Learned(vectors[keep], [t for t, k in zip(tags, keep, strict=True) if k], cfg.min_examples)
    vocab = set(learned.vocab)
    truth = [t & vocab for t, h in zip(tags, held, strict=True) if h]
    pred = [{t for t, _ in p} for p in learned.predict(vectors[~keep], cfg)]
    return agreement(truth, pred)


def agreement_rows(spark: SparkSession, per_tag: dict[str, tuple[int, int, int]], chash: str) -> DataFrame:
    from datetime import datetime, timezone

    at = datetime.now(timezone.utc)
    rows = [(t, s, p, a, *prf(s, p, a), chash, at) for t, (s, p, a) in sorted(per_tag.items())]
    return rows_frame(spark, rows, schemas.TAG_AGREEMENT)


def student_rows(spark: SparkSession, config: Config, student: DataFrame, learned: Learned) -> DataFrame:
    """(sample_id, tag, explanation, rank, score, error) for the samples the classifier tags."""
    import pyarrow as pa

    from instructlake.embed.spark_embed import map_embedded

    cfg = config.tagging.distill
    ref = spark.sparkContext.broadcast((learned.vectors, learned.labels, learned.vocab))
    untagged = (f"no tag reached a vote share of {cfg.min_vote} among the {cfg.k} nearest LLM-tagged samples"
                if learned.vocab else "the LLM-tagged samples taught no tag (each had fewer than "
                                       f"tagging.distill.min_examples = {cfg.min_examples} samples)")

    out = pa.schema([("sample_id", pa.string()), ("tag", pa.string()), ("explanation", pa.string()),
                     ("rank", pa.int32()), ("score", pa.float64()), ("error", pa.string())])

    def emit(model, b: pa.RecordBatch, vec) -> pa.RecordBatch:
        refs, labels, vocab = ref.value
        rows = []
        for sid, p in zip(b.column("sample_id").to_pylist(),
                          vote(np.asarray(vec, np.float32), refs, labels, cfg.k, cfg.min_vote, cfg.max_tags),
                          strict=True):
            rows += [{"sample_id": sid, "tag": vocab[i], "rank": r + 1, "score": round(s, 6),
                      "explanation": f"kNN: {s:.2f} of the votes of the {cfg.k} nearest LLM-tagged samples"}
                     for r, (i, s) in enumerate(p)]
            if not p:
                rows.append({"sample_id": sid, "error": untagged})
        return pa.RecordBatch.from_pylist(rows, schema=out)

    schema = "sample_id string, tag string, explanation string, rank int, score double, error string"
    return map_embedded(spark, student.select("sample_id", "text"), "text", config.embed,
                        config.platform.embed, schema, emit)


def distilled_rows(spark: SparkSession, store: Store, config: Config, todo: DataFrame, n_todo: int,
                   chash: str, ask: Callable,
                   texts: DataFrame) -> tuple[DataFrame, dict[str, int], str | None]:
    """Tag rows for `todo` (sample_id, text): the LLM's for the teacher share (`ask`: the stage's LLM
    tagger), the classifier's for the rest (each with its tagger column); counts; a warning when the
    classifier learned no tag. `texts`: (sample_id, text) of every sample, as the tagger reads it."""
    cfg = config.tagging.distill
    teacher, student, share = teacher_split(todo, config, n_todo)
    rows, counts = ask(store, config, teacher, chash)
    taught = rows.withColumn("tagger", F.lit("llm")).localCheckpoint()
    vectors, tags, held = training_set(spark, store, config, taught, chash, texts)
    per_tag = measure(vectors, tags, held, cfg)
    store.overwrite("tag_agreement", agreement_rows(spark, per_tag, chash))
    learned = Learned(vectors, tags, cfg.min_examples)
    s, p, a = (sum(v[i] for v in per_tag.values()) for i in range(3))
    n_student = student.count()
    counts.update({"distill_llm_tagged": len(tags), "distill_holdout": sum(held),
                   "distill_learned_tags": len(learned.vocab), "distill_student": n_student,
                   "distill_holdout_llm_tags": s, "distill_holdout_predicted": p,
                   "distill_holdout_agreed": a})
    pr, rc, f1 = prf(s, p, a)
    log.info("tagging.distill: the LLM tags %.1f%% of %d samples; kNN over %d LLM-tagged samples (%d held "
             "out), %d tags learned; agreement with the LLM on the held-out samples: precision %s, "
             "recall %s, F1 %s; %d samples tagged by the classifier", 100 * share, n_todo, len(tags),
             sum(held), len(learned.vocab), _fmt(pr), _fmt(rc), _fmt(f1), n_student)
    warning = None if learned.vocab or not n_student else (
        f"tagging.distill: no tag had {cfg.min_examples} LLM-tagged samples, so the classifier tagged none "
        f"of {n_student:,} samples: raise tagging.distill.sample or lower tagging.distill.min_examples")
    out = taught
    if n_student:
        students = student_rows(spark, config, student, learned).withColumn("tagger", F.lit("distilled"))
        out = out.unionByName(students)
    return out, counts, warning


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
