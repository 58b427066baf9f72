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
# # Tag distribution and categories
# How the canonical skill tags (after `normalize-tags`) spread over the pool: the most frequent tags,
# samples per category, tags per sample, and which sources each category comes from.
# Set `INSTRUCTLAKE_WAREHOUSE` (or edit `WAREHOUSE`) to the warehouse to read.

# %%
import os

import matplotlib.pyplot as plt

from instructlake.notebook import open_warehouse, table

WAREHOUSE = os.environ.get("INSTRUCTLAKE_WAREHOUSE", "lakehouse/demo")
store = open_warehouse(WAREHOUSE)

# %% [markdown]
# ## Most frequent canonical tags

# %%
stats = table(store, "tag_stats", ["canonical_tag", "category", "frequency", "n_sources"])
stats = stats.sort_values(["frequency", "canonical_tag"], ascending=[False, True]).reset_index(drop=True)
print(stats.head(20).to_string(index=False))
print(f"{len(stats):,} canonical tags; median frequency {stats['frequency'].median():.0f}")

# %%
top = stats.head(25).iloc[::-1]
plt.figure(figsize=(8, 7))
plt.barh(top["canonical_tag"], top["frequency"])
plt.xlabel("samples")
plt.title("25 most frequent tags")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Samples per category
# A sample counts once per category it has a tag in.

# %%
from pyspark.sql import functions as F  # noqa: E402

canonical = store.read("tag_map").filter(F.col("canonical_tag").isNotNull()).select(
    F.col("raw_tag").alias("tag"), "canonical_tag", "category")
from instructlake.pool import without_removed  # noqa: E402
from instructlake.report.html import of_latest_run  # noqa: E402

# the latest tagging run's tags, of samples dedup kept (what tag_stats counts)
tags = without_removed(store, of_latest_run(store, "tagging", store.read("tags")))
tagged = tags.filter(F.col("tag").isNotNull()).join(canonical, "tag")
per_category = (tagged.groupBy("category").agg(F.countDistinct("sample_id").alias("samples"))
                .orderBy(F.desc("samples"), "category").toPandas())
print(per_category.to_string(index=False))

# %%
plt.figure(figsize=(8, 6))
plt.barh(per_category["category"].iloc[::-1], per_category["samples"].iloc[::-1])
plt.xlabel("samples")
plt.title("samples per category")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Tags per sample

# %%
tags_per_sample = (tagged.groupBy("sample_id").agg(F.countDistinct("canonical_tag").alias("tags"))
                   .groupBy("tags").count().orderBy("tags").toPandas())
print(tags_per_sample.to_string(index=False))

# %% [markdown]
# ## Categories by source

# %%
sources = store.read("samples").select("sample_id", "source")
by_source = (tagged.join(sources, "sample_id").groupBy("source").pivot("category")
             .agg(F.countDistinct("sample_id")).fillna(0).toPandas().set_index("source"))
print(by_source.T.to_string())
