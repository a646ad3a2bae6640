"""Correlation matrix, its singularity check, and sampling adequacy: KMO, per-variable MSA, Bartlett's test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from epiatlas.errors import IndicesError

SINGULAR_RCOND = 1e-10
COLLINEAR_R = 1.0 - 1e-9


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-scores (population SD, as factor-analyzer's `transform`), with the means and SDs used."""
    mean = values.mean(axis=0)
    sd = values.std(axis=0)
    return (values - mean) / sd, mean, sd


def correlation(z: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of standardised columns."""
    r = (z.T @ z) / z.shape[0]
    np.fill_diagonal(r, 1.0)
    return (r + r.T) / 2.0


def check_not_singular(r: np.ndarray, names: list[str], label: str) -> None:
    """Raise naming the perfectly collinear pairs, or the indicators in the null direction, of a singular R."""
    values, vectors = np.linalg.eigh(r)
    if values[0] > SINGULAR_RCOND * values[-1]:
        return
    upper = np.triu(np.abs(r), k=1)
    pairs = [f"{names[i]} ~ {names[j]}" for i, j in zip(*np.nonzero(upper >= COLLINEAR_R), strict=True)]
    if pairs:
        raise IndicesError(
            f"{label}: perfectly collinear indicators ({', '.join(pairs)}); the correlation matrix is singular: "
            "keep one indicator of each pair"
        )
    involved = [names[i] for i in np.nonzero(np.abs(vectors[:, 0]) > 0.1)[0]]
    raise IndicesError(
        f"{label}: singular correlation matrix (smallest eigenvalue {values[0]:.3g}): indicators {involved} are an "
        "exact linear combination of each other; drop one of them"
    )


@dataclass(frozen=True)
class Adequacy:
    """Kaiser-Meyer-Olkin measures and Bartlett's sphericity test of one correlation matrix."""

    kmo: float
    msa: np.ndarray
    bartlett_chi2: float
    bartlett_df: int
    bartlett_p: float


def adequacy(r: np.ndarray, n_rows: int) -> Adequacy:
    """Overall KMO, per-variable MSA, and Bartlett's test that R is the identity.

    Parameters
    ----------
    r : correlation matrix (p x p), not singular.
    n_rows : number of observations behind `r`.

    Notes
    -----
    With partial correlations q_ij = -P_ij / sqrt(P_ii P_jj), P = R^-1, off-diagonal sums give
    MSA_j = sum_i r_ij^2 / (sum_i r_ij^2 + sum_i q_ij^2) and KMO the same over all pairs.
    Bartlett: chi2 = -(n - 1 - (2p + 5) / 6) ln det R with p(p - 1)/2 degrees of freedom.

    References
    ----------
    Kaiser, H. F. (1974). An index of factorial simplicity. Psychometrika, 39(1), 31-36.
    Bartlett, M. S. (1950). Tests of significance in factor analysis. British Journal of Psychology,
    Statistical Section, 3(2), 77-85.
    """
    p = r.shape[0]
    precision = np.linalg.inv(r)
    d = np.sqrt(np.diag(precision))
    q2 = (precision / np.outer(d, d)) ** 2
    r2 = r**2
    np.fill_diagonal(q2, 0.0)
    np.fill_diagonal(r2, 0.0)
    msa = r2.sum(axis=0) / (r2.sum(axis=0) + q2.sum(axis=0))
    kmo = float(r2.sum() / (r2.sum() + q2.sum()))
    _, logdet = np.linalg.slogdet(r)
    statistic = float(-(n_rows - 1 - (2 * p + 5) / 6) * logdet)
    df = p * (p - 1) // 2
    return Adequacy(kmo, msa, statistic, df, float(chi2.sf(statistic, df)))
