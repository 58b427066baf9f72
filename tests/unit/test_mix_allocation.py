"""Budgeted mixing's allocation: properties over random groups, weights, budgets and minimums."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.export.mix import allocate

groups = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 500), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    groups,
    st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from([0.0, 0.5, 1.0, 3.0])),
    st.sampled_from([0.0, 1.0]),
    st.integers(0, 3000),
    st.integers(0, 60),
)
def test_allocation_properties(available, weights, default, total, minimum):
    q = allocate(available, weights, default, total, minimum)
    w = {g: weights.get(g, default) for g in available}
    weighted = {g for g in available if w[g] > 0}
    assert set(q) == set(available)
    assert all(0 <= q[g] <= available[g] for g in available)  # never more than a group has
    assert all(q[g] == 0 for g in available if g not in weighted)  # weight 0: left out
    assert sum(q.values()) == min(total, sum(available[g] for g in weighted))  # the budget, or all there is
    live = [g for g in weighted if available[g]]
    if live and total >= minimum * len(live):  # a budget that covers the minimums gives them
        assert all(q[g] >= min(minimum, available[g]) for g in live)


def test_proportional_to_the_weights_when_nothing_is_capped():
    assert allocate({"a": 1000, "b": 1000, "c": 1000}, {"a": 2, "b": 1, "c": 1}, 1.0, 400, 0) == {
        "a": 200,
        "b": 100,
        "c": 100,
    }


def test_a_small_group_keeps_its_minimum_and_a_full_one_passes_its_share_on():
    q = allocate({"big": 10_000, "mid": 1_000, "tail": 7}, {}, 1.0, 900, 20)
    assert q["tail"] == 7 and q["big"] + q["mid"] == 893 and abs(q["big"] - q["mid"]) <= 1
    assert allocate({"big": 10_000, "small": 50}, {}, 1.0, 1000, 0) == {"big": 950, "small": 50}


def test_a_budget_below_the_minimums_shares_equally():
    assert allocate({"a": 100, "b": 100, "c": 2}, {}, 1.0, 10, 50) == {"a": 4, "b": 4, "c": 2}
