"""The whole models step on one region x period frame: GLMs (cases, severity), LightGBM, SHAP, PD/ICE.

Returns every output table of the `models` group, shaped like its contract, plus the fitted objects. The
GLM and the GBM share the GLM's region-grouped folds, so their CV deviances compare like for like.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epiatlas.errors import ModelError
from epiatlas.models.config import IMAGING_COVARIATES, ModelsConfig
from epiatlas.models.design import OFFSET_COLUMNS
from epiatlas.models.explain import ShapResult, mean_abs_shap, partial_dependence, region_drivers, shap_table, tree_shap
from epiatlas.models.frame import OUTCOME_COLUMNS
from epiatlas.models.gbm import GbmResult, fit_gbm
from epiatlas.models.glm import CountModelResult, fit_count_model, fit_severity_model
from epiatlas.models.screening import screen_covariates

PERIOD_FEATURE = "period_trend"
# Imaging class shares enter through models.imaging_covariates only, never by default.
NOT_COVARIATES = {*OUTCOME_COLUMNS, "parent_id", "index_composite", *IMAGING_COVARIATES}


@dataclass(frozen=True)
class BurdenModels:
    """Fitted models of the burden and the tables they publish."""

    cases: CountModelResult
    severity: CountModelResult | None
    gbm: GbmResult
    shap: ShapResult
    covariates: list[str]
    tables: dict[str, pd.DataFrame]
    timings: dict[str, float] = field(default_factory=dict)
    dropped_covariates: dict[str, str] = field(default_factory=dict)  # covariate -> why it could not enter
    notes: list[str] = field(default_factory=list)  # settings adapted to the data, covariates dropped

    def top_drivers(self, n: int = 3) -> list[str]:
        """The covariates with the largest mean |SHAP|, largest first."""
        return mean_abs_shap(self.shap)["feature"].head(n).tolist()

    def fitted_state(self) -> dict[str, object]:
        """What a user needs to reuse the fits: GLM results stripped of their data (`remove_data`: no private row is
        stored; `predict` on new rows still works) and the GBM model text."""
        return {
            "covariates": self.covariates,
            "glm_cases": _without_data(self.cases.refit),
            "glm_severity": _without_data(self.severity.refit) if self.severity else None,
            "gbm_cases": self.gbm.booster.model_to_string(),
            "gbm_intercept": self.gbm.intercept,
        }


def _without_data(results: object) -> object:
    """A copy of statsmodels results without the arrays of the rows fitted (endog, exog, residuals; and the offset,
    which `remove_data` keeps); predicting on new rows needs their own offset."""
    stripped = copy.deepcopy(results)
    stripped.remove_data()
    stripped.model.offset = None
    return stripped


def default_covariates(frame: pd.DataFrame) -> list[str]:
    """Every socioeconomic index (not the composite), PM2.5 (`pm25`) and every user covariate column; when PM2.5 is
    not measured, every pollutant that is.

    Imaging class shares never enter by default; `fit_burden_models` appends those of models.imaging_covariates.

    Other pollutants enter only when named in models.covariates: each one's missing regions are dropped from the
    fit (complete cases), so adding every pollutant by default would shrink the data to the regions monitored for
    all of them. The composite index is the first unrotated factor, nearly a linear combination of the rotated
    ones, so it is left out too (name it in models.covariates to use it instead of the factors).
    """
    pollutants = {"pm25", "pm10", "o3", "no2", "so2", "co"}
    chosen = {"pm25"} if "pm25" in frame.columns else pollutants
    return [
        c
        for c in frame.columns
        if c not in NOT_COVARIATES and (c in chosen or c not in pollutants) and pd.api.types.is_numeric_dtype(frame[c])
    ]


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - start, 3)


def fit_burden_models(
    frame: pd.DataFrame, config: ModelsConfig, contiguity: object | None = None, published: pd.DataFrame | None = None
) -> BurdenModels:
    """Fit the case GLM, the severity GLM, the GBM and its explanations on `frame` (see `models.frame`).

    Parameters
    ----------
    frame : one row per region x period from `model_frame`.
    config : the `models:` config section; its imaging_covariates must be columns of `frame` (`imaging_columns`).
    contiguity : libpysal W over region ids for Moran's I of the GLM residuals (optional).
    published : the published outcomes (region_id, period, cases, deaths, severe_cases with suppressed cells
        NULL); residuals are blanked wherever the outcome they would reveal is blank there. Without it every
        residual is blanked.
    """
    covariates = [*(config.covariates or default_covariates(frame)), *config.imaging_covariates]
    unknown = sorted(set(covariates) - set(frame.columns))
    if unknown:
        raise ModelError(
            f"models.covariates or models.imaging_covariates name {unknown}, which the model frame does not have "
            f"(imaging columns come from cxr_region_summary); "
            f"available: {default_covariates(frame) + ['index_composite']}"
        )
    _require_varying_imaging(frame, config.imaging_covariates)
    screening = screen_covariates(frame, covariates, config.glm_settings(covariates))
    covariates = screening.kept
    settings = config.glm_settings(covariates).model_copy(update={"cv_folds": screening.cv_folds})
    timings: dict[str, float] = {}
    with _timed(timings, "glm_cases"):
        cases = fit_count_model(frame, settings, contiguity)
    severity = None
    if config.severity and frame[settings.severity_outcome].notna().any():  # aggregated input may lack it
        with _timed(timings, "glm_severity"):
            severity = fit_severity_model(frame, settings, contiguity)
    rows = frame.merge(cases.folds, on=["region_id", "period"], how="inner")
    gbm_covariates = list(covariates)
    if settings.period_effects:  # the GLM's period dummies become one numeric feature the trees can split on
        rows[PERIOD_FEATURE] = rows["period"].astype(np.float64)
        gbm_covariates.append(PERIOD_FEATURE)
    with _timed(timings, "gbm"):
        gbm = fit_gbm(
            rows, gbm_covariates, "cases", OFFSET_COLUMNS[settings.offset], rows["fold"].to_numpy(), config.gbm
        )
    with _timed(timings, "shap"):
        shap = tree_shap(gbm)
    glm_per_unit = _selected_per_unit(cases.coefficients)
    with _timed(timings, "partial_dependence"):
        pdp = partial_dependence(gbm, config.pdp_grid_points, config.pdp_max_rows, glm_per_unit)
    predictions = pd.concat(
        [cases.predictions, *([severity.predictions] if severity else []), _gbm_predictions(gbm)], ignore_index=True
    )
    dropped = "; ".join(f"{c}: {why}" for c, why in screening.dropped.items()) or "none"
    tables = {
        "glm_coefficients": pd.concat([m.coefficients for m in (cases, severity) if m], ignore_index=True),
        "glm_fit": pd.concat([m.fit for m in (cases, severity) if m], ignore_index=True).assign(
            dropped_covariates=dropped),
        "model_predictions": blank_revealing_residuals(predictions, published),
        "gbm_shap": shap_table(shap),
        "region_drivers": region_drivers(shap),
        "gbm_partial_dependence": pdp,
        "model_cv_comparison": cv_comparison(cases, gbm),
    }
    return BurdenModels(cases, severity, gbm, shap, covariates, tables, timings, screening.dropped, screening.notes)


def _require_varying_imaging(frame: pd.DataFrame, imaging: list[str]) -> None:
    """Raise when an imaging covariate has one value in every published region-period (e.g. one class predicted)."""
    constant = [c for c in imaging if frame[c].nunique(dropna=True) < 2]
    if constant:
        raise ModelError(
            f"models.imaging_covariates {constant} take a single value in every region-period with a published "
            "imaging summary (a classifier predicting one class everywhere gives share_* of 0 or 1); use the "
            "mean_p_* columns (mean predicted probabilities) or improve the classifier"
        )


def _selected_per_unit(coefficients: pd.DataFrame) -> dict[str, float]:
    """GLM log rate ratio per original unit of each covariate it selected (for the PD plots' GLM line)."""
    kept = coefficients[coefficients["selected"] & coefficients["covariate_sd"].notna()]
    return dict(zip(kept["term"], kept["estimate_per_unit"].astype(float), strict=True))


def _gbm_predictions(gbm: GbmResult) -> pd.DataFrame:
    """Fitted counts and Pearson residuals of the GBM, shaped like the GLM's predictions."""
    mu = gbm.predict()
    y = gbm.data[gbm.outcome].to_numpy(np.float64)
    return pd.DataFrame(
        {
            "region_id": gbm.data["region_id"].to_numpy(),
            "period": gbm.data["period"].to_numpy(),
            "outcome": gbm.outcome,
            "model": "gbm",
            "fitted": mu,
            "residual": (y - mu) / np.sqrt(mu),
        }
    )


def blank_revealing_residuals(predictions: pd.DataFrame, published: pd.DataFrame | None) -> pd.DataFrame:
    """Residuals kept only where the observed value they derive from is visible in the published outcomes.

    A residual together with its fitted value gives the observed count back, so it is blanked wherever the
    published table hides that count (primary or complementary suppression, or a small deaths count).
    """
    out = predictions.copy()
    if published is None:
        out["residual"] = np.nan
        return out
    visible = published.melt(
        id_vars=["region_id", "period"], value_vars=["cases", "deaths", "severe_cases"], var_name="outcome"
    )
    visible["visible"] = visible["value"].notna()
    merged = out.merge(visible[["region_id", "period", "outcome", "visible"]], how="left", on=["region_id", "period", "outcome"])
    out["residual"] = out["residual"].where(merged["visible"].fillna(False).to_numpy(dtype=bool))
    return out


def cv_comparison(cases: CountModelResult, gbm: GbmResult) -> pd.DataFrame:
    """Mean held-out Poisson deviance per fold of the offset-only model, the GLM at its chosen penalty and the GBM."""
    chosen = cases.cv_path.loc[cases.cv_path["chosen"], "alpha_index"].iloc[0]
    glm = cases.cv_deviance_by_fold[cases.cv_deviance_by_fold["alpha_index"] == chosen].set_index("fold")
    table = gbm.cv_table.set_index("fold")
    if not np.array_equal(glm["n"].to_numpy(), table["n"].to_numpy()):
        raise ModelError("the GLM and the GBM were cross-validated on different folds; they cannot be compared")
    n = table["n"].astype(np.int64)
    return pd.DataFrame(
        {
            "outcome": gbm.outcome,
            "fold": table.index.astype(np.int32),
            "n": n.to_numpy(),
            "offset_only_deviance": (table["null_deviance"] / n).to_numpy(),
            "glm_deviance": (glm["poisson_deviance"] / n).to_numpy(),
            "gbm_deviance": (table["deviance"] / n).to_numpy(),
        }
    )
