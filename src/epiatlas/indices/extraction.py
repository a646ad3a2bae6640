"""Factor extraction (factor-analyzer), rotation, and the deterministic sign and order of the factors."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ORTHOGONAL = {"varimax"}


def max_factors(n_indicators: int) -> int:
    """Largest k with non-negative model degrees of freedom ((p - k)^2 - (p + k)) / 2."""
    return max(k for k in range(1, n_indicators + 1) if (n_indicators - k) ** 2 >= n_indicators + k)


def extract(r: np.ndarray, n_factors: int, method: str) -> tuple[np.ndarray, list[str]]:
    """Unrotated loadings (p x k) from correlation matrix `r` by minres or ML, with the fit's warnings.

    The SVD method is set explicitly (LAPACK, exact) though only principal-axis extraction would use it.
    """
    from factor_analyzer import FactorAnalyzer

    model = FactorAnalyzer(
        n_factors=n_factors, rotation=None, method=method, svd_method="lapack", is_corr_matrix=True, use_smc=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=".*force_all_finite.*", category=FutureWarning)
        model.fit(r)
    return model.loadings_, [f"factor extraction ({method}, k={n_factors}): {w.message}" for w in caught]


def reduced_eigenvalues(r: np.ndarray, method: str) -> np.ndarray:
    """Eigenvalues (descending) of R with one-factor communalities on the diagonal, as psych's fa.parallel."""
    loadings, _ = extract(r, 1, method)
    reduced = r.copy()
    np.fill_diagonal(reduced, (loadings**2).sum(axis=1))
    return np.linalg.eigvalsh(reduced)[::-1]


@dataclass(frozen=True)
class Solution:
    """Rotated pattern loadings, factor correlations (identity when orthogonal) and the unrotated loadings."""

    pattern: np.ndarray
    phi: np.ndarray
    unrotated: np.ndarray

    @property
    def structure(self) -> np.ndarray:
        """Correlations of indicators with factors: pattern x phi."""
        return self.pattern @ self.phi

    @property
    def communality(self) -> np.ndarray:
        """Common variance per indicator: diag(P phi P')."""
        return np.einsum("ik,kl,il->i", self.pattern, self.phi, self.pattern)


def orient(loadings: np.ndarray) -> np.ndarray:
    """Sign per column (+1 or -1) that makes the column's loading sum non-negative (more deprivation = higher)."""
    return np.where(loadings.sum(axis=0) < 0, -1.0, 1.0)


def rotate(unrotated: np.ndarray, rotation: str) -> Solution:
    """Rotate with Kaiser normalisation, then orient each factor and order them by SS loadings (descending).

    Parameters
    ----------
    unrotated : unrotated loadings (p x k).
    rotation : 'varimax' (orthogonal), 'promax' or 'oblimin' (oblique). One factor is left unrotated.

    References
    ----------
    Kaiser, H. F. (1958). The varimax criterion for analytic rotation in factor analysis. Psychometrika,
    23(3), 187-200.
    """
    from factor_analyzer.rotator import Rotator

    k = unrotated.shape[1]
    base = unrotated * orient(unrotated)
    base = base[:, np.argsort(-(base**2).sum(axis=0), kind="stable")]
    if k == 1:
        return Solution(base, np.eye(1), base)
    rotator = Rotator(method=rotation, normalize=True)
    pattern = rotator.fit_transform(unrotated)
    phi = np.eye(k) if rotation in ORTHOGONAL else rotator.phi_
    signs = orient(pattern)
    pattern, phi = pattern * signs, phi * np.outer(signs, signs)
    order = np.argsort(-(pattern**2).sum(axis=0), kind="stable")
    return Solution(pattern[:, order], phi[np.ix_(order, order)], base)
