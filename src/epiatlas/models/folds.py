"""Grouped cross-validation folds: every row of one region (or spatial block) falls in the same fold.

The same region appears in every period, so row-wise folds leak a region's level into its own test fold and
make CV deviance optimistic; grouping by region, or by parent region (spatial blocks), prevents that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from epiatlas.errors import ModelError


def grouped_folds(groups: pd.Series | np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Fold number (0 .. n_splits-1) per row; groups are shuffled with `seed` and dealt round-robin.

    Parameters
    ----------
    groups : region id (or parent region id for spatial blocks) per row.
    n_splits : number of folds; at least 2 and at most the number of distinct groups.
    seed : seed of the shuffle, so the same inputs always give the same folds.
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
    if n_splits < 2:
        raise ModelError(f"cross-validation needs at least 2 folds, got n_splits={n_splits}")
    if len(uniques) < n_splits:
        raise ModelError(
            f"{len(uniques)} distinct regions (CV groups) but n_splits={n_splits}: "
            "lower models.cv_folds or supply more regions"
        )
    order = np.random.default_rng(seed).permutation(len(uniques))
    fold_of_group = np.empty(len(uniques), dtype=np.int64)
    fold_of_group[order] = np.arange(len(uniques)) % n_splits
    return fold_of_group[codes]
