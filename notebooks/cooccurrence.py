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
# # Tag co-occurrence and the power law
# The co-occurrence graph from `instructlake graph`: its strongest edges, degree distribution on log-log
# axes with the fitted power law P(d) ~ d^-gamma above xmin, and the likelihood-ratio comparisons.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from instructlake.notebook import open_warehouse, table

WAREHOUSE = os.environ.get("INSTRUCTLAKE_WAREHOUSE", "lakehouse/demo")
store = open_warehouse(WAREHOUSE)

# %% [markdown]
# ## Strongest edges (by samples sharing both tags, then PMI)

# %%
edges = table(store, "tag_edges", ["tag_a", "tag_b", "weight", "pmi"])
edges = edges.sort_values(["weight", "pmi"], ascending=[False, False]).reset_index(drop=True)
print(edges.head(20).to_string(index=False))
print(f"{len(edges):,} edges")

# %% [markdown]
# ## Degree distribution

# %%
degrees = table(store, "tag_degrees", ["tag", "category", "frequency", "degree", "component"])
fits = table(store, "powerlaw_fit")
fit = fits.set_index("target").loc["degree"]
d = degrees["degree"].to_numpy()
d = d[d > 0]
values, counts = np.unique(d, return_counts=True)
ccdf = 1.0 - np.cumsum(counts) / counts.sum() + counts / counts.sum()  # P(D >= d)
plt.figure(figsize=(6, 4.5))
plt.loglog(values, ccdf, "o", ms=4, label="tags")
tail = values >= fit["xmin"]
if tail.any():
    p_xmin = ccdf[tail][0]
    plt.loglog(values[tail], p_xmin * (values[tail] / fit["xmin"]) ** (1 - fit["gamma"]), "-",
               label=f"power law, gamma {fit['gamma']:.2f}")
plt.xlabel("degree d")
plt.ylabel("P(D >= d)")
plt.legend()
plt.tight_layout()
plt.show()

# %%
print(fits[["target", "n", "gamma", "xmin", "n_tail", "ks_d", "p_value", "lognormal_r", "lognormal_p",
            "exponential_r", "exponential_p", "verdict"]].to_string(index=False))

# %% [markdown]
# ## Hubs and components

# %%
hubs = degrees.sort_values(["degree", "tag"], ascending=[False, True]).head(15)
print(hubs.to_string(index=False))
components = degrees.groupby("component").size().sort_values(ascending=False)
print(f"{len(components):,} components; the largest holds {components.iloc[0]:,} of {len(degrees):,} tags")
