"""Checks of a models run: SHAP additivity, no residual where the published table hides the count, same folds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from epiatlas.models.analysis import BurdenModels
from epiatlas.quality import TableCheck

SHAP_TOLERANCE = 1e-6


def model_checks(models: BurdenModels, published: pd.DataFrame) -> list[TableCheck]:
    """The three model checks, each with the number of failing rows."""
    shap = models.shap
    log_ratio = models.gbm.log_rate_ratio()
    gap = np.abs(shap.base_value + shap.values.sum(axis=1) - log_ratio)
    additive = int((gap > SHAP_TOLERANCE).sum())
    predictions = models.tables["model_predictions"]
    shown = predictions[predictions["residual"].notna()]
    visible = published.melt(
        id_vars=["region_id", "period"], value_vars=["cases", "deaths", "severe_cases"], var_name="outcome"
    )
    joined = shown.merge(visible, on=["region_id", "period", "outcome"], how="left")
    revealing = int(joined["value"].isna().sum())
    cv = models.tables["model_cv_comparison"]
    return [
        TableCheck("shap_additivity", additive == 0, additive,
                   f"max |base + sum SHAP - log rate ratio| = {gap.max():.2e} over {len(gap)} rows"),
        TableCheck("residuals_hidden_where_suppressed", revealing == 0, revealing,
                   f"{revealing} residuals shown where published_outcomes hides the count"),
        TableCheck("same_folds", len(cv) > 0, 0 if len(cv) else 1,
                   f"{len(cv)} folds with GLM and GBM deviance side by side"),
    ]  # fmt: skip
