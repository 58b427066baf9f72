"""The `embeddings` table: one vector per (sample, embed.model) of the sample's instruction.

Decontamination and semantic dedup both read it; each sample is embedded once per model, and a refresh
embeds only the samples that have no vector yet.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from instructlake.config import Config
from instructlake.embed.spark_embed import embed
from instructlake.store import Store

log = logging.getLogger(__name__)


def instruction_vectors(spark: SparkSession, store: Store, config: Config, samples: DataFrame) -> tuple[DataFrame, int]:
    """((sample_id, vector) for every row of `samples`, how many were embedded now). `samples` needs
    sample_id and instruction."""
    model = config.embed.model
    todo = samples.select("sample_id", "instruction")
    if store.exists("embeddings"):
        todo = todo.join(store.read("embeddings").filter(F.col("model") == model).select("sample_id"), "sample_id",
                         "left_anti")
    todo = todo.localCheckpoint()
    n = todo.count()
    if n:
        t0 = time.time()
        log.info("embedding %d instructions with %s", n, model)
        vecs = (embed(spark, todo, "instruction", config.embed, config.platform.embed, keep=("sample_id",))
                .withColumn("model", F.lit(model)).withColumn("embedded_at", F.current_timestamp())
                .localCheckpoint())
        store.merge("embeddings", vecs, source_is_materialized=True)
        log.info("embedded %d instructions in %.1fs", n, time.time() - t0)
    vectors = (store.read("embeddings").filter(F.col("model") == model)
               .join(samples.select("sample_id"), "sample_id", "left_semi").select("sample_id", "vector"))
    return vectors, n
