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
# # Losses and seed criteria
# Base-model losses from `instructlake score` (loss of the response given its instruction, and alone;
# IFD and loss reduction), the undertrained line at mean + 1.96 sigma, and how the four seed criteria of
# `select-seeds` overlap.

# %%
import os

import matplotlib.pyplot as plt

from instructlake.notebook import open_warehouse, table

WAREHOUSE = os.environ.get("INSTRUCTLAKE_WAREHOUSE", "lakehouse/demo")
store = open_warehouse(WAREHOUSE)

# %%
# the latest scoring run's rows (a model or setting scored before is history), of samples dedup kept
from instructlake.pool import without_removed  # noqa: E402
from instructlake.report.html import of_latest_run  # noqa: E402

scores = without_removed(store, of_latest_run(store, "scoring", store.read("scores"))).select(
    "sample_id", "model", "loss_cond", "loss_uncond", "ifd", "loss_reduction", "n_tokens", "truncated", "error",
    "config_hash").toPandas()
ok = scores[scores["error"].isna()]
print(f"{len(ok):,} scored samples ({len(scores) - len(ok):,} failed), models: {', '.join(sorted(ok['model'].unique()))}")
print(ok[["loss_cond", "loss_uncond", "ifd", "loss_reduction", "n_tokens"]].describe().to_string())

# %%
mean, sigma = ok["loss_cond"].mean(), ok["loss_cond"].std()
line = mean + 1.96 * sigma
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
axes[0].hist(ok["loss_cond"], bins=40)
axes[0].axvline(line, color="red", ls="--", label=f"mean + 1.96 sigma = {line:.2f}")
axes[0].set_title("loss_cond")
axes[0].legend()
axes[1].hist(ok["loss_uncond"], bins=40)
axes[1].set_title("loss_uncond")
axes[2].hist(ok["ifd"].dropna().clip(upper=3), bins=40)
axes[2].set_title("IFD (clipped at 3)")
plt.tight_layout()
plt.show()
print(f"{(ok['loss_cond'] > line).sum():,} samples above the line over the whole pool")

# %% [markdown]
# ## Seed criteria and their overlaps

# %%
seeds = table(store, "seeds", ["sample_id", "criteria", "evidence"])
criteria = sorted({c for cs in seeds["criteria"] for c in cs})
per_criterion = {c: int(seeds["criteria"].apply(lambda cs, c=c: c in cs).sum()) for c in criteria}
print(f"{len(seeds):,} seeds: " + ", ".join(f"{c} {n:,}" for c, n in per_criterion.items()))
overlap = {(a, b): int(seeds["criteria"].apply(lambda cs, a=a, b=b: a in cs and b in cs).sum())
           for i, a in enumerate(criteria) for b in criteria[i + 1:]}
for (a, b), n in overlap.items():
    print(f"  {a} & {b}: {n:,}")

# %%
merged = seeds.merge(ok, on="sample_id", how="left")
for c in criteria:
    sub = merged[merged["criteria"].apply(lambda cs, c=c: c in cs)]
    print(f"{c:<14} mean loss_cond {sub['loss_cond'].mean():.3f}  mean loss_reduction {sub['loss_reduction'].mean():.3f}")
