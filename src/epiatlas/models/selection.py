"""Stability of the elastic-net selection: how often each covariate is kept when regions are resampled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from epiatlas.models.design import Design
from epiatlas.models.families import Family
from epiatlas.models.path import fit_path


def selection_frequency(
    design: Design, family: Family, alpha: float, l1_ratio: float, n_boot: int, seed: int
) -> np.ndarray:
    """Share of `n_boot` region bootstrap fits at penalty `alpha` in which each penalized coefficient is non-zero.

    Regions (with all their periods) are drawn with replacement; a region drawn m times enters with weight m.

    Parameters
    ----------
    design : the design of the full fit.
    family : family with its fixed dispersion.
    alpha, l1_ratio : the chosen penalty.
    n_boot : number of resamples.
    seed : seed of the resampling stream.

    References
    ----------
    Meinshausen N, Bühlmann P. Stability selection. JRSS B 2010;72(4):417-473.
    """
    codes, uniques = pd.factorize(pd.Series(design.region_id), sort=True)
    rng = np.random.default_rng([seed, 1])
    kept = np.zeros(int(design.penalized.sum()))
    for _ in range(n_boot):
        draws = np.bincount(rng.integers(0, len(uniques), len(uniques)), minlength=len(uniques))
        weight = draws[codes].astype(float)
        rows = np.flatnonzero(weight > 0)
        path = fit_path(design, family, np.array([alpha]), l1_ratio, rows, weight[rows])
        kept += path.coefs[0, design.penalized] != 0
    return kept / n_boot
