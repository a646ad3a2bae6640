"""Explanations of a fitted GBM: exact TreeSHAP per region x period, top drivers, partial dependence and ICE.

Everything is on the log-rate-ratio scale, log(mu / offset): the offset (expected cases or population) is not
explained, only how far a region's rate sits from what the offset alone predicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from epiatlas.errors import ModelError
from epiatlas.models.gbm import GbmResult, covariate_matrix
from epiatlas.models.threads import fit_threads

ID_COLUMNS = ("region_id", "period")
ICE_QUANTILES = {"ice_p10": 0.10, "ice_p50": 0.50, "ice_p90": 0.90}


@dataclass(frozen=True)
class ShapResult:
    """Exact TreeSHAP values per row: log(mu) = log(offset) + base_value + values.sum(axis=1).

    `base_value` is the GBM's intercept (the training rows' log observed/expected ratio) plus the trees' mean
    output over the training rows: the log rate ratio of an "average" row relative to its offset. Each SHAP
    value is how much one covariate moves that row's log rate ratio away from the base value.
    """

    values: np.ndarray  # rows x features
    base_value: float
    features: tuple[str, ...]
    rows: pd.DataFrame  # region_id, period and the covariates of the rows explained
    outcome: str


def tree_shap(
    result: GbmResult,
    frame: pd.DataFrame | None = None,
    method: Literal["pred_contrib", "tree_explainer"] = "pred_contrib",
) -> ShapResult:
    """Exact (path-dependent) TreeSHAP values of the GBM for each row of `frame` (default: the rows fit).

    Parameters
    ----------
    result : fitted GBM.
    frame : rows to explain, with region_id, period and the covariates.
    method : LightGBM's built-in `pred_contrib`, or shap's `TreeExplainer` (a second implementation).

    References
    ----------
    Lundberg SM et al. From local explanations to global understanding with explainable AI for trees.
    Nature Machine Intelligence 2020;2:56-67.
    """
    rows = result.data if frame is None else frame
    missing = [c for c in (*ID_COLUMNS, *result.covariates) if c not in rows.columns]
    if missing:
        raise ModelError(f"rows to explain lack the column(s) {missing}: region_id, period and the GBM covariates")
    x = covariate_matrix(rows, result.covariates)
    if method == "pred_contrib":
        with fit_threads(openmp=result.settings.num_threads):
            contrib = result.booster.predict(x, pred_contrib=True, num_threads=result.settings.num_threads)
        values, expected = contrib[:, :-1], float(contrib[0, -1])
    else:
        import shap

        explainer = shap.TreeExplainer(result.booster, feature_perturbation="tree_path_dependent")
        values, expected = explainer.shap_values(x), float(np.ravel(explainer.expected_value)[0])
    return ShapResult(
        values=np.asarray(values, dtype=np.float64),
        base_value=result.intercept + expected,
        features=result.covariates,
        rows=rows.loc[:, [*ID_COLUMNS, *result.covariates]].reset_index(drop=True),
        outcome=result.outcome,
    )


def shap_table(shap: ShapResult) -> pd.DataFrame:
    """`gbm_shap`: region_id, period, outcome, feature, feature_value, shap_value; one row per row x feature."""
    n, p = shap.values.shape
    return pd.DataFrame(
        {
            "region_id": np.repeat(shap.rows["region_id"].to_numpy(), p),
            "period": np.repeat(shap.rows["period"].to_numpy(), p),
            "outcome": shap.outcome,
            "feature": np.tile(np.array(shap.features, dtype=object), n),
            "feature_value": covariate_matrix(shap.rows, shap.features).ravel(),
            "shap_value": shap.values.ravel(),
        }
    )


def mean_abs_shap(shap: ShapResult) -> pd.DataFrame:
    """Global importance: feature, mean_abs_shap, rank (1 = largest); ties keep covariate order."""
    importance = np.abs(shap.values).mean(axis=0)
    order = np.argsort(-importance, kind="stable")
    return pd.DataFrame(
        {
            "feature": np.array(shap.features, dtype=object)[order],
            "mean_abs_shap": importance[order],
            "rank": np.arange(1, len(order) + 1),
        }
    )


def region_drivers(shap: ShapResult, top: int = 3) -> pd.DataFrame:
    """`region_drivers`: the `top` features by |SHAP| per region x period (rank 1 = strongest), signed values."""
    n, p = shap.values.shape
    k = min(top, p)
    order = np.argsort(-np.abs(shap.values), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(shap.values, order, axis=1)
    feature_values = np.take_along_axis(covariate_matrix(shap.rows, shap.features), order, axis=1)
    return pd.DataFrame(
        {
            "region_id": np.repeat(shap.rows["region_id"].to_numpy(), k),
            "period": np.repeat(shap.rows["period"].to_numpy(), k),
            "outcome": shap.outcome,
            "rank": np.tile(np.arange(1, k + 1), n),
            "feature": np.array(shap.features, dtype=object)[order.ravel()],
            "feature_value": feature_values.ravel(),
            "shap_value": picked.ravel(),
        }
    )


def partial_dependence(
    result: GbmResult,
    grid_points: int = 20,
    max_rows: int = 500,
    glm_per_unit: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """`gbm_partial_dependence`: PD and ICE quantiles of every covariate as rate ratios against its median.

    For covariate j and grid value x, ICE_i(x) = F(x, x_i,-j) - F(median_j, x_i,-j) for each sampled row i and
    rate_ratio = exp(mean_i F(x, x_i,-j) - mean_i F(median_j, x_i,-j)); ice_p10/p50/p90 are quantiles of
    exp(ICE_i(x)) over rows. The grid spans the 5th to 95th percentile (or the distinct values when fewer).
    glm_rate_ratio = exp(beta_j (x - median_j)) for a GLM log rate ratio per unit beta_j, NaN without one.

    Parameters
    ----------
    result : fitted GBM.
    grid_points : grid values per covariate.
    max_rows : rows sampled (seeded by `result.settings.seed`) to average over; all rows when fewer.
    glm_per_unit : covariate -> the GLM's estimate per original unit (log rate ratio), optional.

    References
    ----------
    Friedman JH. Greedy function approximation: a gradient boosting machine. Ann Stat 2001;29:1189-1232.
    Goldstein A et al. Peeking inside the black box: visualizing statistical learning with plots of individual
    conditional expectation. J Comput Graph Stat 2015;24:44-65.
    """
    if grid_points < 2 or max_rows < 1:
        raise ModelError(f"partial dependence needs grid_points >= 2 and max_rows >= 1, got {grid_points}, {max_rows}")
    unknown = sorted(set(glm_per_unit or {}) - set(result.covariates))
    if unknown:
        raise ModelError(f"GLM effects given for {unknown}, which are not covariates of the GBM {result.covariates}")
    x_all = covariate_matrix(result.data, result.covariates)
    sample = _row_sample(len(x_all), max_rows, result.settings.seed)
    with fit_threads(openmp=result.settings.num_threads):
        frames = [
            _feature_dependence(result, x_all, sample, j, grid_points, (glm_per_unit or {}).get(feature))
            for j, feature in enumerate(result.covariates)
        ]
    return pd.concat(frames, ignore_index=True)


def _row_sample(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `max_rows` of `n` rows, drawn without replacement with `seed`."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _grid(values: np.ndarray, grid_points: int) -> np.ndarray:
    """Evenly spaced values from the 5th to the 95th percentile, or the distinct values when fewer."""
    distinct = np.unique(values)
    if len(distinct) <= grid_points:
        return distinct
    low, high = np.quantile(values, [0.05, 0.95])
    return np.linspace(low, high, grid_points)


def _feature_dependence(
    result: GbmResult, x_all: np.ndarray, sample: np.ndarray, j: int, grid_points: int, glm_beta: float | None
) -> pd.DataFrame:
    """PD, ICE quantiles and the GLM line of covariate j on its grid."""
    observed = x_all[:, j][~np.isnan(x_all[:, j])]
    grid = _grid(observed, grid_points)
    reference = float(np.median(observed))
    points = np.append(grid, reference)
    stacked = np.repeat(x_all[sample][None, :, :], len(points), axis=0)  # points x rows x features
    stacked[:, :, j] = points[:, None]
    raw = result.booster.predict(
        stacked.reshape(-1, x_all.shape[1]), raw_score=True, num_threads=result.settings.num_threads
    ).reshape(len(points), len(sample))
    ice = raw[:-1] - raw[-1]  # grid x rows, log rate ratio against the reference
    frame = pd.DataFrame(
        {
            "outcome": result.outcome,
            "feature": result.covariates[j],
            "grid_value": grid,
            "reference_value": reference,
            "rate_ratio": np.exp(ice.mean(axis=1)),
        }
    )
    for column, q in ICE_QUANTILES.items():
        frame[column] = np.exp(np.quantile(ice, q, axis=1))
    frame["glm_rate_ratio"] = np.nan if glm_beta is None else np.exp(glm_beta * (grid - reference))
    return frame

