"""LLM token counts and their cost: the counts' names, prices from the platform config, glob matching."""

from __future__ import annotations

import pytest

from instructlake.config import ConfigError, load_config
from instructlake.llm import usage


def test_counts_add_up_per_model_with_dots_and_slashes_in_the_name():
    counts = {"calls": 3}
    usage.add(counts, {"calls": 9, **usage.spent("Qwen/Qwen2.5-7B-Instruct", 100, 20)})
    usage.add(counts, usage.spent("Qwen/Qwen2.5-7B-Instruct", 5, 1))
    usage.add(counts, usage.spent("judge.v1", 7, 0))
    assert counts["calls"] == 3  # only token counts are added
    assert usage.by_model(counts) == {"Qwen/Qwen2.5-7B-Instruct": usage.Tokens(105, 21),
                                      "judge.v1": usage.Tokens(7, 0)}


def test_cost_uses_the_exact_entry_before_a_glob():
    prices = usage.parse_prices({"gpt-4o-mini": "0.15,0.60", "gpt-4o*": "2.5, 10"})
    assert usage.price_of("gpt-4o-mini", prices) == usage.Price(0.15, 0.60)
    assert usage.price_of("gpt-4o-2024-08-06", prices) == usage.Price(2.5, 10.0)
    assert usage.price_of("llama", prices) is None
    assert usage.cost(usage.Tokens(2_000_000, 1_000_000), prices["gpt-4o-mini"]) == pytest.approx(0.9)
    assert usage.cost(usage.Tokens(1, 1), None) is None


def test_line_says_tokens_and_cost_only_where_a_price_is_set():
    counts = {**usage.spent("a", 1_000_000, 0), **usage.spent("b", 3, 4)}
    assert usage.line(counts, {"a": "2,8"}) == ("a: 1,000,000 prompt + 0 completion tokens (about $2.0000); "
                                               "b: 3 prompt + 4 completion tokens")
    assert usage.line({"calls": 1}, {}) == ""


@pytest.mark.parametrize("bad", ["1", "1,2,3", "a,b", "-1,2", ""])
def test_a_bad_price_is_refused_at_load_naming_the_key(bad):
    with pytest.raises(ConfigError, match=r"platform\.llm\.prices\['m'\]"):
        load_config("local", [f'platform.llm.prices={{"m": "{bad}"}}'])


def test_prices_load_from_the_config():
    cfg = load_config("local", ['platform.llm.prices={"gpt-4o-mini": "0.15,0.60"}'])
    assert usage.parse_prices(cfg.platform.llm.prices) == {"gpt-4o-mini": usage.Price(0.15, 0.60)}
