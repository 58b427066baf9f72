"""Power-law fits on samples with known exponents, and on a degree distribution that is not a power law."""

import numpy as np
import pytest
from scipy import stats

from instructlake.graph.powerlaw_fit import fit


def barabasi_albert_degrees(n: int, m: int, seed: int) -> np.ndarray:
    """Degrees of a Barabási–Albert graph (linear preferential attachment): P(d) ~ d^-3."""
    rng = np.random.default_rng(seed)
    deg = np.zeros(n, dtype=np.int64)
    ends: list[int] = []  # every edge end once: a uniform draw from it is proportional to degree
    targets = list(range(m))
    for v in range(m, n):
        for t in set(targets):
            deg[v] += 1
            deg[t] += 1
            ends += [t, v]
        idx = rng.integers(0, len(ends), m)
        targets = [ends[i] for i in idx]
    return deg


def test_discrete_power_law_exponent_is_recovered():
    x = stats.zipf.rvs(2.5, size=5000, random_state=1)
    f = fit(x, "zipf")
    assert abs(f.gamma - 2.5) <= 0.15
    assert f.exponential_r > 0 and f.exponential_p < 0.1  # heavier than exponential, clearly
    assert f.n == 5000 and 0 < f.n_tail <= 5000 and f.ks_d < 0.05


def test_barabasi_albert_degrees_give_gamma_about_3():
    f = fit(barabasi_albert_degrees(50_000, 5, seed=3), "ba")
    assert abs(f.gamma - 3.0) <= 0.15, f


def test_erdos_renyi_degrees_reject_the_power_law():
    deg = np.random.default_rng(0).binomial(3000, 10 / 3000, size=3000)  # ER G(n, p): binomial degrees
    f = fit(deg, "er")
    assert f.lognormal_r < 0 and f.lognormal_p < 0.1
    assert f.exponential_r < 0 and f.exponential_p < 0.1
    assert f.verdict.startswith("power law rejected")


def test_bootstrap_p_value_separates_power_law_from_not():
    # under a true power law p is about uniform on [0, 1]: its mean over a few draws is near 0.5
    ps = [fit(stats.zipf.rvs(2.5, size=1500, random_state=s), "zipf", bootstrap=25, seed=s).p_value for s in range(6)]
    assert all(p is not None for p in ps) and np.mean(ps) > 0.25, ps
    bad = fit(np.random.default_rng(0).binomial(3000, 10 / 3000, size=3000), "er", bootstrap=25, seed=1)
    assert bad.p_value is not None and bad.p_value < 0.05


def test_too_few_values_is_a_clear_error():
    with pytest.raises(ValueError, match="too few"):
        fit([1, 2, 2, 0, 0], "tiny")
