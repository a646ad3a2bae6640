"""GLM diagnostics: variance inflation factors and Moran's I of residuals with a permutation test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from epiatlas.errors import ModelError


@dataclass(frozen=True)
class MoranResult:
    """Global Moran's I on row-standardised weights, its permutation p-value and the regions used."""

    i: float
    expected: float
    p_value: float
    n: int
    n_islands: int
    permutations: int


def variance_inflation(X: pd.DataFrame) -> pd.Series:
    """VIF per column: the diagonal of the inverse correlation matrix, 1 / (1 - R²_j) of a regression on the others.

    References
    ----------
    Fox J, Monette G. Generalized collinearity diagnostics. JASA 1992;87(417):178-183.
    """
    corr = np.corrcoef(X.to_numpy(), rowvar=False).reshape(X.shape[1], X.shape[1])
    return pd.Series(np.diag(np.linalg.inv(corr)), index=X.columns, name="vif")


MIN_MORAN_REGIONS = 3


def _connected(values: pd.Series, weights: object) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The weights among the regions of `values` (in their order) and which of them keep a neighbour once the
    islands (also regions whose neighbours all lack values) are left out, repeatedly."""
    position = {rid: k for k, rid in enumerate(weights.id_order)}
    unknown = [rid for rid in values.index if rid not in position]
    if unknown:
        raise ModelError(
            f"{len(unknown)} regions have residuals but no entry in the spatial weights (first: {unknown[:3]}); "
            "build the weights from the same regions table"
        )
    order = [position[r] for r in values.index]
    matrix = sparse.csr_matrix(weights.sparse)[order][:, order]
    keep = np.ones(len(values), dtype=bool)
    while True:
        connected = np.asarray(matrix[keep][:, keep].sum(axis=1)).ravel() > 0
        if connected.all():
            break
        keep[np.flatnonzero(keep)[~connected]] = False
    return matrix, keep


def connected_regions(values: pd.Series, weights: object) -> int:
    """How many regions of `values` have a neighbour among them (those Moran's I compares)."""
    return int(_connected(values, weights)[1].sum())


def moran_permutation(values: pd.Series, weights: object, permutations: int, seed: int) -> MoranResult:
    """Moran's I of `values` (indexed by region id) on a libpysal `W`, row-standardised, islands left out.

    Regions in `weights` without a value are dropped first; a region left with no neighbour (an island,
    also one whose neighbours all lack values) cannot be compared and is left out and counted. The p-value
    is the pseudo p-value (larger + 1) / (permutations + 1) in the direction of the observed I, as in
    `esda.Moran` (whose I this equals, tested); the permutations come from a seeded generator rather than
    NumPy's global random state, so the p-value is reproducible.

    Parameters
    ----------
    values : one value per region (e.g. the mean Pearson residual over periods).
    weights : libpysal.weights.W whose ids are the region ids (e.g. queen contiguity of the boundaries).
    permutations : number of random relabellings of the values.
    seed : seed of the permutations.

    References
    ----------
    Moran PAP. Notes on continuous stochastic phenomena. Biometrika 1950;37:17-23.
    Anselin L. Local indicators of spatial association - LISA. Geographical Analysis 1995;27(2):93-115.
    """
    matrix, keep = _connected(values, weights)
    if keep.sum() < MIN_MORAN_REGIONS:
        raise ModelError(f"only {int(keep.sum())} regions with neighbours; Moran's I needs at least {MIN_MORAN_REGIONS}")
    x = values.to_numpy(dtype=float)
    sub = matrix[keep][:, keep]
    w = sparse.diags(1.0 / np.asarray(sub.sum(axis=1)).ravel()) @ sub
    z = x[keep] - x[keep].mean()
    observed = float(z @ (w @ z) / (z @ z))
    rng = np.random.default_rng([seed, 2])
    shuffled = rng.permuted(np.tile(z, (permutations, 1)), axis=1).T
    simulated = np.einsum("ij,ij->j", shuffled, w @ shuffled) / (z @ z)
    larger = int((simulated >= observed).sum())
    larger = min(larger, permutations - larger)
    n = int(keep.sum())
    return MoranResult(
        i=observed,
        expected=-1.0 / (n - 1),
        p_value=(larger + 1) / (permutations + 1),
        n=n,
        n_islands=int(len(x) - n),
        permutations=permutations,
    )
