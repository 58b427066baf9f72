"""Budgeted mixing at export: at most export.mix.max_samples rows, shared among categories or sources.

`allocate` decides how many rows each group gets: first every group with a weight gets
`min_per_group` rows (all it has, if fewer; when the budget cannot give every group its minimum, an
equal share, the smallest groups served first), then the rest of the budget goes out in proportion to
the weights, a group never getting more than it has (what it cannot take goes to the others). `apply`
then draws each group's rows by a seeded hash of the sample id, so the same config and pool draw the same
rows, and a pool that grows keeps most of an earlier draw.
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from instructlake.config import Config
from instructlake.store import Store

UNCATEGORIZED = "uncategorized"


def allocate(available: dict[str, int], weights: dict[str, float], default_weight: float, total: int,
             minimum: int) -> dict[str, int]:
    """Rows per group: sum = min(total, rows of the groups with a weight), each at most what it has."""
    w = {g: weights.get(g, default_weight) for g in available}
    groups = sorted((g for g in available if w[g] > 0 and available[g] > 0), key=lambda g: (available[g], g))
    quota = {g: 0 for g in available}
    budget = min(total, sum(available[g] for g in groups))
    if not groups:
        return quota
    floor = min(minimum, budget // len(groups))
    for g in groups:
        quota[g] = min(available[g], floor)
    spare = budget - sum(quota.values())
    wanting = [g for g in groups if quota[g] < min(minimum, available[g])]
    while spare > 0 and wanting:  # what an equal floor left over, one row each in turn, smallest first
        for g in wanting[:spare]:
            quota[g] += 1
            spare -= 1
        wanting = [g for g in wanting if quota[g] < min(minimum, available[g])]
    while spare > 0:  # the rest in proportion to the weights, capped by what each group has
        open_ = [g for g in groups if quota[g] < available[g]]
        weight = sum(w[g] for g in open_)
        shares = {g: spare * w[g] / weight for g in open_}
        given = {g: min(available[g] - quota[g], math.floor(shares[g])) for g in open_}
        if not any(given.values()):  # fractions only: one row each to the largest remainders
            for g in sorted(open_, key=lambda g: (-(shares[g] - math.floor(shares[g])), g))[:spare]:
                given[g] = 1
        for g, n in given.items():
            quota[g] += n
            spare -= n
    return quota


def groups_of(store: Store, config: Config, df: DataFrame) -> DataFrame:
    """`df` with a `_group` column: its best tag's category (or uncategorized), or its source."""
    if config.export.mix.by == "source":
        return df.withColumn("_group", F.col("source"))
    from instructlake.export.card import best_category

    best = best_category(store, config, df.select("sample_id"))
    if best is None:
        return df.withColumn("_group", F.lit(UNCATEGORIZED))
    return (df.join(best.withColumnRenamed("category", "_group"), "sample_id", "left")
            .withColumn("_group", F.coalesce("_group", F.lit(UNCATEGORIZED))))


def apply(store: Store, config: Config, df: DataFrame) -> tuple[DataFrame, dict]:
    """`df` cut to the budget (unchanged without one), and what was asked, available and drawn per group."""
    mix = config.export.mix
    if not mix.max_samples:
        return df, {}
    grouped = groups_of(store, config, df)
    available = {r["_group"]: int(r["count"]) for r in grouped.groupBy("_group").count().collect()}
    quota = allocate(available, mix.weights, mix.default_weight, mix.max_samples, mix.min_per_group)
    quotas = F.create_map(*[x for g, n in quota.items() for x in (F.lit(g), F.lit(n))]) if quota else None
    order = F.sha2(F.concat_ws(":", F.lit(str(mix.seed)), F.col("sample_id")), 256)
    drawn = (grouped.withColumn("_n", F.row_number().over(Window.partitionBy("_group").orderBy(order,
                                                                                          "sample_id")))
             .filter(F.col("_n") <= quotas[F.col("_group")]) if quotas is not None else grouped.limit(0))
    from dataclasses import asdict

    info = {"asked": asdict(mix),
            "available": dict(sorted(available.items())), "drawn": dict(sorted(quota.items())),
            "dropped": sum(available.values()) - sum(quota.values())}
    return drawn.drop("_group", "_n"), info
