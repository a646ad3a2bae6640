"""Tidy frames of one factor-analysis fit, shaped like the future warehouse tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from epiatlas.indices.adequacy import Adequacy
from epiatlas.indices.scores import quintiles
from epiatlas.indices.settings import IndicesSettings


def loadings_frame(
    index_names: list[str], indicators: list[str], loadings: np.ndarray, communality: np.ndarray
) -> pd.DataFrame:
    """factor, indicator, loading, communality, uniqueness; communality is the model's, repeated per factor."""
    n_index = len(index_names)
    return pd.DataFrame(
        {
            "factor": np.repeat(index_names, len(indicators)),
            "indicator": np.tile(indicators, n_index),
            "loading": loadings.T.ravel(),
            "communality": np.tile(communality, n_index),
            "uniqueness": np.tile(1.0 - communality, n_index),
        }
    )


def variance_frame(factors: list[str], pattern: np.ndarray) -> pd.DataFrame:
    """factor, ss_loadings, proportion, cumulative (of the indicators' total standardised variance)."""
    ss = (pattern**2).sum(axis=0)
    p = pattern.shape[0]
    return pd.DataFrame({"factor": factors, "ss_loadings": ss, "proportion": ss / p, "cumulative": np.cumsum(ss) / p})


def diagnostics_frame(stats: Adequacy, n_rows: int, n_factors: int, settings: IndicesSettings) -> pd.DataFrame:
    """One row: sample size, KMO, Bartlett's test, number of factors and the fit's settings."""
    return pd.DataFrame(
        {
            "n_rows": [n_rows],
            "n_indicators": [len(settings.indicators)],
            "kmo": [stats.kmo],
            "bartlett_chi2": [stats.bartlett_chi2],
            "bartlett_df": [stats.bartlett_df],
            "bartlett_p": [stats.bartlett_p],
            "n_factors": [n_factors],
            "method": [settings.method],
            "rotation": [settings.rotation if n_factors > 1 else "none"],
            "transform": [settings.transform],
        }
    )


def scores_frame(keys: pd.DataFrame, index_names: list[str], scores: np.ndarray) -> pd.DataFrame:
    """region_id, period, index, score, quintile (per index and period)."""
    n_index = len(index_names)
    frame = pd.DataFrame(
        {
            "region_id": np.tile(keys["region_id"].to_numpy(), n_index),
            "period": np.tile(keys["period"].to_numpy(), n_index),
            "index": np.repeat(index_names, len(keys)),
            "score": scores.T.ravel(),
        }
    )
    frame["quintile"] = quintiles(frame["score"], [frame["index"], frame["period"]])
    return frame
