"""Embeddings inside Spark: mapInArrow with the model loaded once per Python worker.

Each Arrow batch is encoded in one call (the model sorts it by length, so little compute goes to padding),
and torch gets the host's cores divided by the task slots on it, so concurrent tasks do not fight over
threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pyspark.sql import DataFrame, SparkSession

from instructlake.config import EmbedConfig, EmbedSettings
from instructlake.resources import gpu_profile, task_threads


def worker_threads(spark: SparkSession, settings: EmbedSettings) -> int:
    """Torch threads per Python worker: explicit, or the host's cores over its concurrent tasks."""
    return task_threads(spark, settings.threads) or 1


def spread(spark: SparkSession, df: DataFrame) -> DataFrame:
    """A small Delta table is often one file, hence one task: spread it over every task slot."""
    slots = spark.sparkContext.defaultParallelism
    return df.repartition(slots) if df.rdd.getNumPartitions() < slots else df


def map_embedded(spark: SparkSession, df: DataFrame, text_col: str, cfg: EmbedConfig, settings: EmbedSettings,
                 out_schema: str, emit: Callable) -> DataFrame:
    """mapInArrow over df with the worker's embedder: `emit(model, batch, vectors)` turns each slice of at
    most platform.embed.rows_per_call rows and its vectors into an output RecordBatch. The model loads on
    the first non-empty batch, so an empty partition loads nothing."""
    import pyarrow as pa

    threads = worker_threads(spark, settings)
    batch_rows = max(1, settings.rows_per_call)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from instructlake.embed.embedder import get_embedder

        model = None
        for big in batches:
            for off in range(0, big.num_rows, batch_rows):
                b = big.slice(off, batch_rows)
                model = model or get_embedder(cfg, settings, threads)
                yield emit(model, b, model.encode(b.column(text_col).to_pylist()))

    return spread(spark, df).mapInArrow(run, out_schema,
                                        profile=gpu_profile(settings.gpus_per_task, settings.executor_gpus))


def embed(spark: SparkSession, df: DataFrame, text_col: str, cfg: EmbedConfig, settings: EmbedSettings,
          keep: tuple[str, ...] = ()) -> DataFrame:
    """`keep` columns plus `vector` (array<float>, L2-normalized) for every row of df."""
    import pyarrow as pa

    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    out_schema = ", ".join([f"`{c}` {types[c]}" for c in keep] + ["vector array<float>"])

    def emit(model, b: pa.RecordBatch, vec) -> pa.RecordBatch:
        import numpy as np

        flat = pa.array(vec.ravel(), pa.float32())
        offsets = pa.array(np.arange(0, vec.size + 1, max(1, vec.shape[1]), dtype=np.int32))
        lists = pa.ListArray.from_arrays(offsets, flat) if len(b) else pa.array([], pa.list_(pa.float32()))
        return pa.RecordBatch.from_arrays([b.column(c) for c in keep] + [lists], names=[*keep, "vector"])

    return map_embedded(spark, df.select(*dict.fromkeys([*keep, text_col])), text_col, cfg, settings, out_schema, emit)
