"""Rates, intervals and ratios, each formula in one function citing its source.

Conventions: ``alpha`` is 0.05 for 95% intervals; an interval is ``(lower, upper)``; a rate is per 1,000
residents unless stated. Functions take plain numbers or NumPy arrays and never touch the database.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse, stats

ALPHA = 0.05
PER = 1000.0
BYAR_FROM = 10  # PHE: exact Poisson below 10 events, Byar's approximation from 10


@functools.cache
def z_value(alpha: float = ALPHA) -> float:
    """The two-sided standard normal quantile, 1.959964 for alpha = 0.05."""
    return float(stats.norm.ppf(1 - alpha / 2))


def rate_per_1000(count: float, population: float) -> float | None:
    """Rate per 1,000: ``1000 * O / P``. None when the population is zero or missing (no rate exists)."""
    if population is None or population <= 0:
        return None
    return PER * count / population


def poisson_exact_interval(count: float, alpha: float = ALPHA) -> tuple[float, float]:
    """Exact (Garwood) interval for a Poisson count O.

    ``[chi2(alpha/2, 2O) / 2, chi2(1 - alpha/2, 2O + 2) / 2]``, with lower = 0 when O = 0.
    Source: Garwood (1936); as used by Public Health England's fingertips methods.
    """
    lower = 0.0 if count == 0 else float(stats.chi2.ppf(alpha / 2, 2 * count) / 2)
    upper = float(stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2)
    return lower, upper


def byar_interval(count: float, alpha: float = ALPHA) -> tuple[float, float]:
    """Byar's approximation to the exact Poisson interval, for O >= 10.

    ``L = O (1 - 1/(9O) - z/(3 sqrt O))^3``; ``U = (O+1) (1 - 1/(9(O+1)) + z/(3 sqrt(O+1)))^3``.
    Source: Breslow & Day (1987); PHE Technical Guide: Confidence Intervals (2018).
    """
    z = z_value(alpha)
    o = float(count)
    lower = o * (1 - 1 / (9 * o) - z / (3 * math.sqrt(o))) ** 3
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * math.sqrt(o + 1))) ** 3
    return lower, upper


def count_interval(count: float, alpha: float = ALPHA) -> tuple[float, float]:
    """PHE's rule: exact Poisson below 10 events, Byar from 10."""
    return poisson_exact_interval(count, alpha) if count < BYAR_FROM else byar_interval(count, alpha)


def rate_interval(count: float, population: float, alpha: float = ALPHA) -> tuple[float, float] | None:
    """The count interval scaled to a rate per 1,000; None with no population."""
    if population is None or population <= 0:
        return None
    lower, upper = count_interval(count, alpha)
    return PER * lower / population, PER * upper / population


def harm_variance(counts: npt.ArrayLike, weights: npt.ArrayLike) -> float:
    """Variance of harm H = sum n_k w_k with each n_k Poisson: ``Var(H) = sum n_k w_k^2``.

    Source: the compound-Poisson variance of a weighted sum of independent Poisson counts
    (Chiang 1961; Fay & Feuer 1997).
    """
    n = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    return float(np.sum(n * w * w))


def harm_gamma_interval(
    harm: float, variance: float, max_weight: float, alpha: float = ALPHA
) -> tuple[float, float]:
    """Gamma interval for a weighted sum of Poisson counts (Fay & Feuer 1997).

    With y = harm, v = its variance and w_M the largest weight that could contribute (Fay & Feuer) or the
    mean weight (Tiwari et al. 2006, see ``harm_interval``):
    ``L = v/(2y) * chi2^-1(alpha/2; df = 2y^2/v)`` (0 when y = 0) and
    ``U = (v + w_M^2)/(2(y + w_M)) * chi2^-1(1 - alpha/2; df = 2(y + w_M)^2/(v + w_M^2))``.
    Better than the normal interval when counts are small. Source: Fay M.P., Feuer E.J. (1997)
    "Confidence intervals for directly standardized rates: a method based on the gamma distribution",
    Statistics in Medicine 16:791-801.
    """
    if harm <= 0 or variance <= 0:
        lower = 0.0
    else:
        lower = float(variance / (2 * harm) * stats.chi2.ppf(alpha / 2, 2 * harm * harm / variance))
    v_up = variance + max_weight * max_weight
    y_up = harm + max_weight
    upper = float(v_up / (2 * y_up) * stats.chi2.ppf(1 - alpha / 2, 2 * y_up * y_up / v_up))
    return lower, upper


def harm_interval(counts: npt.ArrayLike, weights: npt.ArrayLike, alpha: float = ALPHA) -> tuple[float, float]:
    """95% interval for harm ``H = sum n_k w_k``: the gamma interval with Tiwari's modification.

    Fay & Feuer's ``w_M`` (the largest weight) makes the interval very conservative when one weight is
    huge and rare (homicide weighs ~8,000 days against ~2 for cannabis possession). Tiwari, Clegg & Zou
    (2006, Statistical Methods in Medical Research 15:547-569) replace it with the mean weight, which holds
    coverage near 95% for ward-sized counts. With a single very heavy, very rare category the interval
    stays conservative (coverage above 95%), never anti-conservative, in harmmap's simulations.
    Pass every category of the scheme (zero counts included), so the mean weight is the scheme's, as in
    ``harm_index.scores``.
    """
    w = np.asarray(weights, dtype=float)
    harm = float(np.sum(np.asarray(counts, dtype=float) * w))
    return harm_gamma_interval(
        harm, harm_variance(counts, weights), float(w.mean()) if w.size else 0.0, alpha
    )


@dataclass(frozen=True)
class Ratio:
    """A ratio with its interval and whether the interval excludes 1."""

    ratio: float | None
    lower: float | None
    upper: float | None

    @property
    def significant(self) -> bool:
        """True when the interval lies wholly above or below 1."""
        return self.lower is not None and self.upper is not None and (self.lower > 1 or self.upper < 1)


def rate_ratio_katz(a: float, pop_a: float, b: float, pop_b: float, alpha: float = ALPHA) -> Ratio:
    """Rate ratio RR = (a/Pa)/(b/Pb) with the Katz log interval ``exp(ln RR +/- z sqrt(1/a + 1/b))``.

    Undefined (None) when either count or population is zero. Source: Katz D. et al. (1978) Biometrics
    34:469-474; statsmodels ``confint_poisson_2indep(method='wald-log')``.
    """
    if a <= 0 or b <= 0 or pop_a <= 0 or pop_b <= 0:
        return Ratio(None, None, None)
    ratio = (a / pop_a) / (b / pop_b)
    half = z_value(alpha) * math.sqrt(1 / a + 1 / b)
    return Ratio(ratio, ratio * math.exp(-half), ratio * math.exp(half))


def harm_ratio(
    harm_a: float, var_a: float, harm_b: float, var_b: float, scale: float = 1.0, alpha: float = ALPHA
) -> Ratio:
    """Ratio of two harms (e.g. a period against its baseline, each per month) with a log-normal interval.

    ``R = scale * Ha / Hb``; ``Var(ln R) ~ Va/Ha^2 + Vb/Hb^2`` (delta method); the interval is
    ``exp(ln R +/- z sqrt(Var))``. ``scale`` puts the two on the same footing (e.g. months_b / months_a).
    Source: the delta method for a ratio of independent estimates (e.g. Rothman, Modern Epidemiology).
    """
    if harm_a <= 0 or harm_b <= 0:
        return Ratio(None, None, None)
    ratio = scale * harm_a / harm_b
    half = z_value(alpha) * math.sqrt(var_a / harm_a**2 + var_b / harm_b**2)
    return Ratio(ratio, ratio * math.exp(-half), ratio * math.exp(half))


def empirical_bayes_global(events: npt.ArrayLike, base: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Global empirical Bayes smoothed rates (Marshall 1991), per unit of ``base``.

    ``theta = sum e / sum b``; ``s2 = sum b_i (r_i - theta)^2 / sum b - theta / mean(b)``;
    ``W_i = s2 / (s2 + theta / b_i)`` (0 when s2 <= 0); ``r_hat_i = W_i r_i + (1 - W_i) theta``.
    Areas with base 0 get theta. Source: Marshall R.J. (1991) "Mapping disease and mortality rates using
    empirical Bayes estimators", Applied Statistics 40:283-294.
    """
    e = np.asarray(events, dtype=float)
    b = np.asarray(base, dtype=float)
    theta = e.sum() / b.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b > 0, e / b, theta)
        s2 = np.sum(b * (r - theta) ** 2) / b.sum() - theta / b.mean()
        weight = np.where(b > 0, s2 / (s2 + theta / b), 0.0) if s2 > 0 else np.zeros_like(b)
    return np.asarray(weight * r + (1 - weight) * theta, dtype=np.float64)


def empirical_bayes_spatial(
    events: npt.ArrayLike, base: npt.ArrayLike, neighbours: list[list[int]]
) -> npt.NDArray[np.float64]:
    """Spatial (local) empirical Bayes smoothed rates (Marshall 1991), per unit of ``base``.

    For area i with neighbourhood N_i (i and its neighbours, ``neighbours[i]``):
    ``theta_i = sum_N e / sum_N b``; ``s2_i = sum_N b_j (r_j - theta_i)^2 / sum_N b - theta_i / mean_N(b)``;
    ``W_i = s2_i / (s2_i + theta_i / b_i)`` (0 when s2_i <= 0); ``r_hat_i = W_i r_i + (1 - W_i) theta_i``.
    The global estimator is the case where every neighbourhood is the whole map. Source: Marshall R.J.
    (1991), Applied Statistics 40:283-294; as in PySAL esda.smoothing.Spatial_Empirical_Bayes.
    """
    e = np.asarray(events, dtype=float)
    b = np.asarray(base, dtype=float)
    n = len(e)
    # One sparse neighbourhood matrix (each area with itself) turns every neighbourhood sum into a product.
    rows = np.concatenate([np.arange(n), *(np.full(len(near), i) for i, near in enumerate(neighbours))])
    cols = np.concatenate([np.arange(n), *(np.asarray(near, dtype=int) for near in neighbours)])
    hood = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    hood.sum_duplicates()
    hood.data[:] = 1.0  # an area listed as its own neighbour still counts once
    e_sum, b_sum, size = hood @ e, hood @ b, np.asarray(hood.sum(axis=1)).ravel()
    out = np.full(n, np.nan)
    ok = b_sum > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(ok, e_sum / b_sum, np.nan)
        r = np.where(b > 0, e / b, np.nan)
        # sum_N b_j (r_j - theta_i)^2 expanded; areas with b_j = 0 add nothing to any of the three sums.
        br = np.where(b > 0, b * r, 0.0)
        brr = np.where(b > 0, b * r * r, 0.0)
        spread = hood @ brr - 2 * theta * (hood @ br) + theta**2 * b_sum
        s2 = spread / b_sum - theta / (b_sum / size)
        own = np.where(b > 0, r, theta)
        weight = np.where((s2 > 0) & (b > 0), s2 / (s2 + theta / b), 0.0)
        out[ok] = (weight * own + (1 - weight) * theta)[ok]
    return out


def count_intervals(
    counts: npt.ArrayLike, alpha: float = ALPHA
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``count_interval`` for many counts at once (exact below 10, Byar from 10)."""
    o = np.asarray(counts, dtype=float)
    z = z_value(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact_lower = np.where(o > 0, stats.chi2.ppf(alpha / 2, 2 * o) / 2, 0.0)
        exact_upper = stats.chi2.ppf(1 - alpha / 2, 2 * o + 2) / 2
        byar_lower = o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3
        byar_upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * np.sqrt(o + 1))) ** 3
    small = o < BYAR_FROM
    return np.where(small, exact_lower, byar_lower), np.where(small, exact_upper, byar_upper)


def harm_gamma_intervals(
    harm: npt.ArrayLike, variance: npt.ArrayLike, w_m: npt.ArrayLike, alpha: float = ALPHA
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``harm_gamma_interval`` for many areas at once (same formula, vectorised)."""
    y = np.asarray(harm, dtype=float)
    v = np.asarray(variance, dtype=float)
    w = np.asarray(w_m, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (y > 0) & (v > 0)
        lower = np.where(
            positive, v / (2 * y) * stats.chi2.ppf(alpha / 2, np.where(positive, 2 * y * y / v, 1.0)), 0.0
        )
        v_up = v + w * w
        y_up = y + w
        upper = v_up / (2 * y_up) * stats.chi2.ppf(1 - alpha / 2, 2 * y_up * y_up / v_up)
    return lower, upper
