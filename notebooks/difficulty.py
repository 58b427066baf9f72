# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Difficulty
# Ratings from `instructlake difficulty` (1-10 with a rationale, by an LLM): their distribution for the
# original pool and for the synthesized (evolved, targeted) samples, and the hardest instructions.
# Difficulty needs an LLM backend; without one this notebook says so and stops.

# %%
import os

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from instructlake.notebook import open_warehouse

WAREHOUSE = os.environ.get("INSTRUCTLAKE_WAREHOUSE", "lakehouse/demo")
store = open_warehouse(WAREHOUSE)
has_ratings = store.exists("difficulty")
if not has_ratings:
    print("no difficulty table: run `instructlake difficulty` with synth.llm (or synth.oracle) configured")

# %%
if has_ratings:
    rated = (store.read("difficulty").filter(F.col("difficulty").isNotNull())
             .join(store.read("samples").select("sample_id", "source", "instruction"), "sample_id")
             .withColumn("group", F.when(F.col("source") == "synth", "synthesized").otherwise("pool")))
    dist = rated.groupBy("group", "difficulty").count().orderBy("group", "difficulty").toPandas()
    by_group = dist.pivot(index="difficulty", columns="group", values="count").fillna(0).astype(int)
    print(by_group.to_string())
    means = rated.groupBy("group").agg(F.avg("difficulty").alias("mean"), F.count("*").alias("n")).toPandas()
    print(means.to_string(index=False))

# %%
if has_ratings:
    ax = by_group.plot.bar(figsize=(7, 3.8))
    ax.set_xlabel("difficulty")
    ax.set_ylabel("samples")
    plt.tight_layout()
    plt.show()

# %%
if has_ratings:
    hardest = rated.orderBy(F.desc("difficulty"), "sample_id").limit(10).toPandas()
    for r in hardest.itertuples():
        print(f"{r.difficulty:>2} [{r.source}] {r.instruction[:150]!r}")
