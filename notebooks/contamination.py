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
# # Contamination review
# Samples `instructlake decontam` flagged against each benchmark, with the evidence (embedding cosine,
# shared n-grams) and both texts side by side, plus the cosine distribution of the closest matches, to
# judge whether the threshold is right for this pool.

# %%
import os

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from instructlake.notebook import open_warehouse
from instructlake.report.html import contamination_rows, contamination_summary

WAREHOUSE = os.environ.get("INSTRUCTLAKE_WAREHOUSE", "lakehouse/demo")
store = open_warehouse(WAREHOUSE)

# %% [markdown]
# Rows of the latest decontam configuration only (rows of an earlier threshold or benchmark set are history).

# %%
c = contamination_rows(store)
summary = contamination_summary(c).toPandas()
print(summary.to_string(index=False))

# %% [markdown]
# ## Flagged samples, closest first

# %%
prompts = store.read("benchmarks").select("benchmark", "item_id", "prompt")
texts = store.read("samples").select("sample_id", "instruction")
flagged = (c.filter("flagged").join(prompts, ["benchmark", "item_id"]).join(texts, "sample_id")
           .select("benchmark", "item_id", "cosine", "ngram_shared", "methods", "instruction", "prompt")
           .orderBy(F.desc_nulls_last("cosine")).toPandas())
for r in flagged.head(15).itertuples():
    print(f"[{r.benchmark} {r.item_id}] cosine {r.cosine:.3f}, {r.ngram_shared} shared n-grams, {', '.join(r.methods)}")
    print(f"   sample:    {r.instruction[:160]!r}")
    print(f"   benchmark: {r.prompt[:160]!r}")

# %% [markdown]
# ## Cosine of each sample's closest benchmark prompt

# %%
best = c.groupBy("sample_id").agg(F.max("cosine").alias("cosine")).toPandas()
plt.figure(figsize=(6, 3.8))
plt.hist(best["cosine"].dropna(), bins=50)
plt.yscale("log")
plt.xlabel("best cosine to a benchmark prompt")
plt.ylabel("samples")
plt.tight_layout()
plt.show()
