"""Zero-shot tagging: each instruction gets the taxonomy tags its embedding is closest to.

Used when no LLM is configured. A tag is given when its cosine similarity to the instruction (embedding of
"tag: description") is at least `min_similarity` and within `margin` of the instruction's best tag, up to
`top_k` tags. The taxonomy's embeddings are computed once per Python worker, beside the model.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from instructlake.config import EmbedConfig, EmbedSettings, TaggingConfig, config_hash
from instructlake.worker_models import once_per_worker


def choose(sims: np.ndarray, top_k: int, min_similarity: float, margin: float) -> list[list[tuple[int, float]]]:
    """For each row of a (samples x tags) similarity matrix: [(tag index, similarity)] best first."""
    k = min(top_k, sims.shape[1])
    if sims.shape[0] == 0 or k == 0:
        return [[] for _ in range(sims.shape[0])]
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    out = []
    for i, idx in enumerate(top):
        s = sims[i, idx]
        order = np.lexsort((idx, -s))  # best first; ties broken by tag index, so results are deterministic
        best = s[order[0]]
        out.append([(int(idx[j]), float(s[j])) for j in order
                    if s[j] >= min_similarity and s[j] >= best - margin])
    return out


def tag(spark: SparkSession, df: DataFrame, cfg: TaggingConfig, ecfg: EmbedConfig, settings: EmbedSettings) -> DataFrame:
    """(sample_id, tags array<struct<tag, score, rank>>) for df(sample_id, text)."""
    import pyarrow as pa

    from instructlake.embed.spark_embed import map_embedded
    from instructlake.tagging import taxonomy

    tax = taxonomy.load()
    names = [t for t, _, _ in tax.tags]
    item = pa.struct([("tag", pa.string()), ("score", pa.float64()), ("rank", pa.int32())])

    def emit(model, b: pa.RecordBatch, vec) -> pa.RecordBatch:
        tag_vectors = once_per_worker("taxonomy-vectors", {"embed": config_hash(ecfg), "taxonomy": tax.version},
                                      lambda: model.encode(tax.tag_texts()))
        picks = choose(vec @ tag_vectors.T, cfg.top_k, cfg.min_similarity, cfg.margin)
        tags = pa.array([[{"tag": names[j], "score": round(s, 6), "rank": r + 1} for r, (j, s) in enumerate(p)]
                         for p in picks], pa.list_(item))
        return pa.RecordBatch.from_arrays([b.column("sample_id"), tags], names=["sample_id", "tags"])

    return map_embedded(spark, df.select("sample_id", "text"), "text", ecfg, settings,
                        "sample_id string, tags array<struct<tag: string, score: double, rank: int>>", emit)
