"""Tag co-occurrence: which skills appear together in one instruction, as a weighted graph.

Edges: every unordered pair of a sample's canonical tags, weighted by the number of samples holding both,
with pointwise mutual information log(w * N / (f_a * f_b)). A sample keeps at most
`graph.max_tags_per_sample` tags for pairing, its best-ranked ones (the tagger's order; then the name),
so one sample adds at most k(k-1)/2 edges: the cap and how many samples and pairs it cut are counted.
Every tag, paired or not, is a vertex: degree, weighted degree and connected component per tag.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake.graph.components import connected_components
from instructlake.store import Store


def sample_tags(store: Store, tagging_hash: str) -> DataFrame:
    """(sample_id, tags array<string> best-ranked first, categories map) from `tags`, mapped through `tag_map`
    to canonical tags (rare ones dropped) when it exists, else the raw tags. Samples dedup has since removed
    keep their rows in `tags` (so no model call is repeated if they return) but are left out here."""
    t = raw_tags(store, tagging_hash).select("sample_id", F.col("tag").alias("raw_tag"),
                                             F.coalesce("rank", F.lit(1 << 20)).alias("rank"))
    if store.exists("tag_map"):
        m = store.read("tag_map").filter(F.col("canonical_tag").isNotNull()).select("raw_tag", "canonical_tag")
        t = t.join(m, "raw_tag").select("sample_id", F.col("canonical_tag").alias("tag"), "rank")
    else:
        t = t.select("sample_id", F.col("raw_tag").alias("tag"), "rank")
    best = t.groupBy("sample_id", "tag").agg(F.min("rank").alias("rank"))
    return best.groupBy("sample_id").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("rank", "tag"))), lambda s: s["tag"]).alias("tags"))


def tag_rows(store: Store, tagging_hash: str, version: int | None = None) -> DataFrame:
    """The rows of `tags` under the tagging config (a null tag: tagged, none given), of samples dedup has
    not removed: tags of samples removed after they were tagged stay cached in `tags` but do not count."""
    from instructlake.pool import without_removed

    return without_removed(store, store.read("tags", version=version)
                           .filter(F.col("config_hash") == tagging_hash))


def raw_tags(store: Store, tagging_hash: str) -> DataFrame:
    """The rows of `tags` with a tag under the tagging config, of samples dedup has not removed."""
    return tag_rows(store, tagging_hash).filter(F.col("tag").isNotNull())


def cut_to_nothing(store: Store, tagging_hash: str) -> bool:
    """Whether tag_map's frequency cut is why no sample has a canonical tag: samples have raw tags."""
    return store.exists("tag_map") and bool(raw_tags(store, tagging_hash).limit(1).count())


def pair_edges(tagged: DataFrame, max_tags: int) -> tuple[DataFrame, DataFrame]:
    """(edges tag_a < tag_b with weight and pmi, per-tag frequencies over the capped tag sets)."""
    capped = tagged.select("sample_id", F.array_sort(F.slice("tags", 1, max_tags)).alias("tags"))
    n = F.size("tags")
    pairs = capped.filter(n >= 2).select(F.explode(F.flatten(F.transform(
        F.sequence(F.lit(0), n - 2),
        lambda i: F.transform(F.sequence(i + 1, n - 1),
                              lambda j: F.struct(F.element_at("tags", i + 1).alias("a"),
                                                 F.element_at("tags", j + 1).alias("b")))))).alias("p"))
    weights = pairs.groupBy(F.col("p.a").alias("tag_a"), F.col("p.b").alias("tag_b")).agg(F.count("*").alias("weight"))
    freq = capped.select(F.explode("tags").alias("tag")).groupBy("tag").agg(F.count("*").alias("frequency"))
    total = capped.filter(n >= 1).count()
    fa = freq.select(F.col("tag").alias("tag_a"), F.col("frequency").alias("fa"))
    fb = freq.select(F.col("tag").alias("tag_b"), F.col("frequency").alias("fb"))
    edges = (weights.join(fa, "tag_a").join(fb, "tag_b")
             .withColumn("pmi", F.log(F.col("weight") * F.lit(float(total)) / (F.col("fa") * F.col("fb"))))
             .select("tag_a", "tag_b", "weight", "pmi"))
    return edges, freq


def cap_counts(tagged: DataFrame, max_tags: int) -> dict[str, int]:
    n = F.size("tags")
    full = n * (n - 1) / 2
    kept = F.least(n, F.lit(max_tags))
    row = tagged.agg(F.sum((n > max_tags).cast("long")).alias("capped"),
                     F.sum(full - kept * (kept - 1) / 2).cast("long").alias("pairs_dropped"),
                     F.max(n).alias("max_tags_seen")).first()
    return {"capped_samples": int(row["capped"] or 0), "capped_pairs_dropped": int(row["pairs_dropped"] or 0),
            "max_tags_seen": int(row["max_tags_seen"] or 0)}


def degrees(spark: SparkSession, edges: DataFrame, freq: DataFrame, engine: str = "auto") -> DataFrame:
    """(tag, frequency, degree, weighted_degree, component) for every tag, isolated ones included."""
    both = edges.select(F.col("tag_a").alias("tag"), "weight").unionByName(
        edges.select(F.col("tag_b").alias("tag"), "weight"))
    deg = both.groupBy("tag").agg(F.count("*").alias("degree"), F.sum("weight").alias("weighted_degree"))
    comps = connected_components(spark, edges.select(F.col("tag_a").alias("src"), F.col("tag_b").alias("dst")),
                                 freq.select(F.col("tag").alias("id")), engine)
    return (freq.join(deg, "tag", "left").join(comps.withColumnRenamed("id", "tag"), "tag", "left")
            .select("tag", "frequency", F.coalesce("degree", F.lit(0)).cast("long").alias("degree"),
                    F.coalesce("weighted_degree", F.lit(0)).cast("long").alias("weighted_degree"),
                    F.coalesce("component", "tag").alias("component")))
