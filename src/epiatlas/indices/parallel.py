"""Horn's parallel analysis on the reduced correlation matrix, seeded, with the fit's own extraction method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epiatlas.indices.extraction import reduced_eigenvalues


def random_correlation(n_rows: int, p: int, rng: np.random.Generator) -> np.ndarray:
    """Correlation matrix of n_rows x p independent normal data, drawn directly as a Wishart(n_rows - 1, I)."""
    from scipy.stats import wishart

    scatter = wishart(df=n_rows - 1, scale=np.eye(p)).rvs(random_state=rng)
    d = np.sqrt(np.diag(scatter))
    return scatter / np.outer(d, d)


@dataclass(frozen=True)
class ParallelAnalysis:
    """Observed and random-data reduced eigenvalues, and the number of factors retained."""

    observed: np.ndarray
    random_quantile: np.ndarray
    n_factors: int


def parallel_analysis(
    r: np.ndarray, n_rows: int, method: str, iterations: int, quantile: float, seed: int
) -> ParallelAnalysis:
    """Retain the leading factors whose reduced eigenvalue exceeds the `quantile` of normal random data's.

    Parameters
    ----------
    r : observed correlation matrix (p x p).
    n_rows : observations behind `r`; each random data set has the same shape (n_rows x p); its correlation
        matrix is drawn from the Wishart distribution, which is exactly the distribution of that of normal data.
    method : extraction method ('minres' or 'ml') used for the one-factor communalities of both.
    iterations : number of random data sets.
    quantile : quantile of the random eigenvalues a factor must exceed (0.95: Glorfeld's variant).
    seed : seed of the random data, so the retained number is reproducible.

    Returns
    -------
    ParallelAnalysis; `n_factors` counts leading eigenvalues above the threshold (0 when none is).

    References
    ----------
    Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis. Psychometrika,
    30(2), 179-185.
    """
    rng = np.random.default_rng(seed)
    p = r.shape[0]
    simulated = np.stack([reduced_eigenvalues(random_correlation(n_rows, p, rng), method) for _ in range(iterations)])
    observed = reduced_eigenvalues(r, method)
    threshold = np.quantile(simulated, quantile, axis=0)
    above = observed > threshold
    n_factors = int(np.argmin(above)) if not above.all() else p
    return ParallelAnalysis(observed, threshold, n_factors)
