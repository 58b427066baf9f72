"""The report's LLM section: tokens spent per stage and model (from the run records) with a cost estimate
where platform.llm.prices has the model, and the tokens behind the answers llm_cache holds per prompt."""

from __future__ import annotations

from pyspark.sql import functions as F

from instructlake.llm import usage
from instructlake.report.parts import table
from instructlake.store import Store


def spent_per_stage(store: Store) -> dict[tuple[str, str], usage.Tokens]:
    """(stage, model) -> tokens, summed over every successful run's record."""
    if not store.exists("runs"):
        return {}
    rows = (store.read("runs").filter(F.col("status") == "ok")
            .select("stage", F.explode("counts").alias("k", "v"))
            .filter(F.col("k").startswith(usage.PREFIX)).groupBy("stage", "k").agg(F.sum("v").alias("v"))
            .collect())
    per_stage: dict[str, dict[str, int]] = {}
    for r in rows:
        per_stage.setdefault(r["stage"], {})[r["k"]] = int(r["v"])
    return {(stage, model): t for stage, counts in per_stage.items()
            for model, t in usage.by_model(counts).items()}


def cached_per_prompt(store: Store) -> list:
    """Per prompt version and model: answers held in llm_cache, their attempts and tokens."""
    if not store.exists("llm_cache"):
        return []
    return (store.read("llm_cache").groupBy("prompt_version", "model")
            .agg(F.count("*").alias("answers"), F.sum("attempts").alias("attempts"),
                 F.sum("prompt_tokens").alias("prompt"), F.sum("completion_tokens").alias("completion"))
            .orderBy("prompt_version", "model").collect())


def _money(c: float | None) -> str:
    return "no price set" if c is None else f"${c:,.4f}"


def tokens_section(store: Store, config=None) -> str:
    spent = spent_per_stage(store)
    cached = cached_per_prompt(store)
    if not spent and not cached:
        return ""
    prices = usage.parse_prices(config.platform.llm.prices if config is not None else {})
    parts = ["<h2>LLM tokens</h2>"]
    if spent:
        costs = {key: usage.cost(t, usage.price_of(key[1], prices)) for key, t in spent.items()}
        rows = [[stage, model, t.prompt, t.completion, _money(costs[(stage, model)])]
                for (stage, model), t in sorted(spent.items())]
        priced = [c for c in costs.values() if c is not None]
        rows.append(["all stages", "", sum(t.prompt for t in spent.values()),
                     sum(t.completion for t in spent.values()),
                     (f"${sum(priced):,.4f}" + ("" if len(priced) == len(costs) else " (priced models only)"))
                     if priced else "no price set"])
        parts.append("<h3>Spent, per stage and model (all successful runs)</h3>"
                     + table(["stage", "model", "prompt tokens", "completion tokens", "cost estimate"], rows))
    if cached:
        rows = []
        for r in cached:
            t = usage.Tokens(int(r["prompt"] or 0), int(r["completion"] or 0))
            rows.append([r["prompt_version"], r["model"], int(r["answers"]), int(r["attempts"] or 0), t.prompt,
                         t.completion, _money(usage.cost(t, usage.price_of(r["model"], prices)))])
        parts.append("<h3>Answers in llm_cache, per prompt</h3>"
                     + table(["prompt", "model", "answers", "attempts", "prompt tokens", "completion tokens",
                              "cost estimate"], rows))
    parts.append('<p class="muted">Tokens as the engine counted them, every attempt included (a re-ask after '
                 "an invalid answer costs again). Cached answers cost nothing when a later run reuses them. "
                 "Prices: platform.llm.prices, US dollars per million prompt and completion tokens.</p>")
    return "\n".join(parts)
