"""Every formula in harm_index.stats against hand-computed values and, for intervals, simulation."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from harm_index.stats import (
    byar_interval,
    count_interval,
    empirical_bayes_global,
    harm_gamma_interval,
    harm_interval,
    harm_ratio,
    harm_variance,
    poisson_exact_interval,
    rate_interval,
    rate_per_1000,
    rate_ratio_katz,
    z_value,
)

TIGHT = 1e-9  # exact arithmetic
TABLE = 5e-4  # values quoted to 4-5 significant figures from published tables / hand working
COVERAGE = (0.93, 0.97)
DRAWS = 2000


def test_z() -> None:
    assert_allclose(z_value(), 1.959964, rtol=TABLE)


def test_rate_per_1000() -> None:
    assert rate_per_1000(15, 3000) == 5.0
    assert rate_per_1000(3, 0) is None
    assert rate_interval(3, 0) is None


def test_exact_poisson_matches_tables() -> None:
    # Garwood interval for O = 5 is 1.6235 to 11.6683; for O = 0 it is 0 to 3.6889.
    assert_allclose(poisson_exact_interval(5), (1.6235, 11.6683), rtol=TABLE)
    assert_allclose(poisson_exact_interval(0), (0.0, 3.6889), rtol=TABLE)


def test_byar_by_hand() -> None:
    # O = 20: L = 20 (1 - 1/180 - 1.959964/(3 sqrt 20))^3 = 12.2114;
    # U = 21 (1 - 1/189 + 1.959964/(3 sqrt 21))^3 = 30.8899 (the exact interval is 12.217 to 30.889).
    assert_allclose(byar_interval(20), (12.2114, 30.8899), rtol=TABLE)


def test_count_interval_switches_at_ten() -> None:
    assert count_interval(9) == poisson_exact_interval(9)
    assert count_interval(10) == byar_interval(10)


def test_harm_variance_by_hand() -> None:
    assert harm_variance([2, 3], [10.0, 1.0]) == 2 * 100 + 3 * 1


def test_gamma_interval_with_unit_weights_is_the_exact_poisson_interval() -> None:
    for count in (1, 4, 17, 60):
        assert_allclose(harm_gamma_interval(count, count, 1.0), poisson_exact_interval(count), rtol=TIGHT)


def test_gamma_interval_of_zero_harm() -> None:
    lower, upper = harm_gamma_interval(0.0, 0.0, 2.0)
    # w_M/2 * chi2(0.975; df 2) = 2/2 * 7.3778 = 7.3778
    assert lower == 0.0
    assert_allclose(upper, 7.3778, rtol=TABLE)


def test_katz_rate_ratio_by_hand() -> None:
    # RR = (30/1000)/(10/2000) = 6; half-width = 1.959964 sqrt(1/30 + 1/10) = 0.715681
    ratio = rate_ratio_katz(30, 1000, 10, 2000)
    assert ratio.ratio == pytest.approx(6.0, rel=TIGHT)
    assert_allclose((ratio.lower, ratio.upper), (6 * np.exp(-0.715681), 6 * np.exp(0.715681)), rtol=TABLE)
    assert ratio.significant
    assert rate_ratio_katz(0, 1000, 10, 2000).ratio is None


def test_harm_ratio_by_hand() -> None:
    # Ha = 200 (V 400), Hb = 100 (V 100), equal periods: R = 2, Var(ln R) = 400/200^2 + 100/100^2 = 0.02
    ratio = harm_ratio(200, 400, 100, 100)
    half = 1.959964 * np.sqrt(0.02)
    assert_allclose(
        (ratio.ratio, ratio.lower, ratio.upper), (2.0, 2 * np.exp(-half), 2 * np.exp(half)), rtol=TABLE
    )
    assert harm_ratio(200, 400, 100, 100, scale=0.5).ratio == pytest.approx(1.0)


def test_global_empirical_bayes_by_hand() -> None:
    # theta = 10/20 = 0.5; r = (0.1, 0.9); s2 = 0.16 - 0.5/10 = 0.11; W = 0.11/0.16 = 0.6875
    smoothed = empirical_bayes_global([1, 9], [10, 10])
    assert_allclose(smoothed, [0.225, 0.775], rtol=TIGHT)
    # No extra-Poisson variation: every area shrinks to the overall rate.
    assert_allclose(empirical_bayes_global([5, 5], [10, 10]), [0.5, 0.5], rtol=TIGHT)


def test_count_rate_interval_coverage() -> None:
    rng = np.random.default_rng(20180401)
    population, true_rate = 5000, 8.0  # 40 expected events
    counts = rng.poisson(true_rate * population / 1000, DRAWS)
    covered = [
        lo <= true_rate <= hi for lo, hi in (rate_interval(int(c), population) or (0, 0) for c in counts)
    ]
    assert COVERAGE[0] <= np.mean(covered) <= COVERAGE[1]


def test_harm_interval_coverage_for_a_ward_over_five_years() -> None:
    rng = np.random.default_rng(20200301)
    # ONS CSS-like weights: cannabis possession, shoplifting, burglary, robbery, homicide.
    weights = np.array([1.77, 15.2, 123.0, 465.0, 7973.0])
    means = np.array([400, 200, 100, 30, 0.5])
    truth = float(weights @ means)
    draws = rng.poisson(means, (DRAWS, len(weights)))
    covered = [lo <= truth <= hi for lo, hi in (harm_interval(d, weights) for d in draws)]
    assert COVERAGE[0] <= np.mean(covered) <= COVERAGE[1]


def test_spatial_empirical_bayes_by_hand() -> None:
    from harm_index.stats import empirical_bayes_spatial

    # Areas 0-1 neighbour each other; 2 stands alone. Area 2's neighbourhood is itself: no shrinkage.
    smoothed = empirical_bayes_spatial([1, 9, 4], [10, 10, 10], [[1], [0], []])
    assert_allclose(smoothed[:2], [0.225, 0.775], rtol=TIGHT)  # the two-area global case above
    assert_allclose(smoothed[2], 0.4, rtol=TIGHT)
    # When every neighbourhood is the whole map, the spatial estimator is the global one.
    everyone = [[1, 2], [0, 2], [0, 1]]
    assert_allclose(
        empirical_bayes_spatial([1, 9, 4], [10, 20, 30], everyone),
        empirical_bayes_global([1, 9, 4], [10, 20, 30]),
        rtol=TIGHT,
    )


def test_vectorised_intervals_match_the_scalar_ones() -> None:
    from harm_index.stats import count_intervals, harm_gamma_intervals

    counts = [0, 3, 9, 10, 57]
    low, high = count_intervals(counts)
    assert_allclose(np.column_stack([low, high]), [count_interval(c) for c in counts], rtol=TIGHT)
    harms, variances, means = [0.0, 50.0, 1234.5], [0.0, 400.0, 90000.0], [2.0, 3.0, 40.0]
    low, high = harm_gamma_intervals(harms, variances, means)
    expected = [harm_gamma_interval(h, v, m) for h, v, m in zip(harms, variances, means, strict=True)]
    assert_allclose(np.column_stack([low, high]), expected, rtol=TIGHT)


def test_spatial_empirical_bayes_matches_the_formula_area_by_area() -> None:
    """The vectorised estimator against Marshall's formula written out for each neighbourhood."""
    from harm_index.stats import empirical_bayes_spatial

    rng = np.random.default_rng(4)
    base = rng.integers(0, 5000, 40).astype(float)
    base[[3, 17]] = 0.0
    events = rng.poisson(base * 0.02).astype(float)
    hoods = [
        sorted({int(j) for j in rng.choice(40, 4, replace=False)} | ({i} if i % 7 == 0 else set()))
        for i in range(40)
    ]
    expected = []
    for i, near in enumerate(hoods):
        idx = np.array(sorted({i, *near}))
        e, b = events[idx], base[idx]
        theta = e.sum() / b.sum()
        r = np.where(b > 0, e / np.where(b > 0, b, 1), theta)
        s2 = np.sum(b * (r - theta) ** 2) / b.sum() - theta / b.mean()
        own = events[i] / base[i] if base[i] > 0 else theta
        w = s2 / (s2 + theta / base[i]) if s2 > 0 and base[i] > 0 else 0.0
        expected.append(w * own + (1 - w) * theta)
    assert np.allclose(empirical_bayes_spatial(events, base, hoods), expected, rtol=1e-12)
