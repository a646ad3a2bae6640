"""Confidence intervals on the small region x period table: exact Poisson (Garwood) and Fay-Feuer gamma."""

from __future__ import annotations

import numpy as np
from scipy import stats


def _tails(confidence_level: float) -> tuple[float, float]:
    """Lower and upper tail probabilities of a two-sided interval."""
    alpha = 1.0 - confidence_level
    return alpha / 2.0, 1.0 - alpha / 2.0


def poisson_exact_ci(counts: np.ndarray, confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Garwood exact interval for a Poisson mean from observed counts (lower is 0 for a zero count)."""
    counts = np.asarray(counts, dtype=float)
    lo_p, hi_p = _tails(confidence_level)
    with np.errstate(invalid="ignore"):
        lower = np.where(counts > 0, stats.chi2.ppf(lo_p, 2.0 * counts) / 2.0, 0.0)
        upper = stats.chi2.ppf(hi_p, 2.0 * counts + 2.0) / 2.0
    missing = np.isnan(counts)
    return np.where(missing, np.nan, lower), np.where(missing, np.nan, upper)


def fay_feuer_ci(
    rate: np.ndarray, variance: np.ndarray, max_weight: np.ndarray, confidence_level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fay-Feuer (1997) gamma interval for a directly standardised rate sum(w c / n).

    `variance` is sum(w^2 c / n^2) and `max_weight` is max(w / n) over strata.
    """
    rate, variance, max_weight = (np.asarray(a, dtype=float) for a in (rate, variance, max_weight))
    lo_p, hi_p = _tails(confidence_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(
            rate > 0, stats.gamma.ppf(lo_p, rate**2 / variance, scale=variance / rate), 0.0
        )
        shifted_rate, shifted_var = rate + max_weight, variance + max_weight**2
        upper = stats.gamma.ppf(hi_p, shifted_rate**2 / shifted_var, scale=shifted_var / shifted_rate)
    missing = np.isnan(rate)
    return np.where(missing, np.nan, lower), np.where(missing, np.nan, upper)
