"""Factor scores by the regression (Thurstone) method, quintiles per period, and factor names."""

from __future__ import annotations

import numpy as np
import pandas as pd

N_NAME_INDICATORS = 2


def regression_scores(z: np.ndarray, r: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Scores Z R^-1 S: the least-squares prediction of each factor from the standardised indicators.

    Parameters
    ----------
    z : standardised indicators (n x p), standardised as for `r`.
    r : their correlation matrix (p x p).
    structure : indicator-factor correlations (p x k); the loadings themselves for orthogonal factors.

    References
    ----------
    Thurstone, L. L. (1935). The Vectors of Mind. University of Chicago Press.
    """
    return z @ np.linalg.solve(r, structure)


def quintiles(scores: pd.Series, groups: list[pd.Series]) -> pd.Series:
    """Quintile 1 (lowest score, least deprived) to 5 per group; tied scores share the lower quintile."""
    grouped = scores.groupby(groups, dropna=False, sort=False)
    rank, size = grouped.rank(method="min"), grouped.transform("size")
    return (1 + np.floor(5 * (rank - 1) / size)).astype("int64")


def factor_names(pattern: np.ndarray, indicators: list[str]) -> list[str]:
    """'f<i>_<top indicator>_<second>' per factor, from the largest absolute pattern loadings."""
    names = []
    for k in range(pattern.shape[1]):
        top = np.argsort(-np.abs(pattern[:, k]), kind="stable")[:N_NAME_INDICATORS]
        names.append("_".join([f"f{k + 1}", *(indicators[j] for j in top)]))
    return names
