"""LLM tokens spent, per model, as a stage's counts: `tokens.prompt.<model>` and `tokens.completion.<model>`.

`llm.cache.complete` counts the tokens of the answers it asked for now (cached answers cost nothing); a
stage adds each call's to its own counts with `add`, so its run record says what the stage spent, by model.
With a price per million tokens configured for a model (`platform.llm.prices`), `cost` turns those counts
into an estimate. Plain Python: the CLI imports it at start-up.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from instructlake.counts import prefixed
from instructlake.errors import ConfigError

PREFIX = "tokens."
PROMPT, COMPLETION = "tokens.prompt.", "tokens.completion."


def spent(model: str, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The counts of one call: what `complete` returns beside its prompts and cache hits."""
    return {PROMPT + model: int(prompt_tokens), COMPLETION + model: int(completion_tokens)}


def add(counts: dict[str, int], call: dict[str, int]) -> None:
    """Add a call's token counts to a stage's counts (models summed separately)."""
    for k, v in call.items():
        if k.startswith(PREFIX):
            counts[k] = counts.get(k, 0) + int(v)


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    completion: int = 0


def by_model(counts: dict[str, int]) -> dict[str, Tokens]:
    """A stage's tokens per model, from its counts."""
    prompt, completion = dict(prefixed(counts, PROMPT)), dict(prefixed(counts, COMPLETION))
    return {m: Tokens(int(prompt.get(m, 0)), int(completion.get(m, 0)))
            for m in prompt.keys() | completion.keys()}


@dataclass(frozen=True)
class Price:
    """US dollars per million prompt and completion tokens."""

    prompt: float
    completion: float


def parse_prices(prices: dict[str, str]) -> dict[str, Price]:
    """platform.llm.prices ({model or glob: "prompt,completion"}, USD per million tokens) checked."""
    out = {}
    for pattern, text in prices.items():
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 2 or any(v < 0 for v in values):
            raise ConfigError(f"platform.llm.prices[{pattern!r}] = {text!r}: expected two non-negative "
                              "numbers, \"prompt,completion\" US dollars per million tokens "
                              "(e.g. \"0.15,0.60\")")
        out[pattern] = Price(*values)
    return out


def price_of(model: str, prices: dict[str, Price]) -> Price | None:
    """The model's price: its own entry, else the first glob that matches it, else None."""
    if model in prices:
        return prices[model]
    return next((p for pattern, p in prices.items() if fnmatch.fnmatchcase(model, pattern)), None)


def cost(tokens: Tokens, price: Price | None) -> float | None:
    """The estimate in US dollars; None without a price."""
    if price is None:
        return None
    return (tokens.prompt * price.prompt + tokens.completion * price.completion) / 1e6


def line(counts: dict[str, int], prices: dict[str, str]) -> str:
    """"model: 1,234 prompt + 567 completion tokens (about $0.0012)" per model, or "" without tokens."""
    parsed = parse_prices(prices)
    parts = []
    for model, t in sorted(by_model(counts).items()):
        c = cost(t, price_of(model, parsed))
        money = f" (about ${c:,.4f})" if c is not None else ""
        parts.append(f"{model}: {t.prompt:,} prompt + {t.completion:,} completion tokens{money}")
    return "; ".join(parts)
