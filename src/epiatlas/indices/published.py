"""The indices' published tables (`socioeconomic_indices`, `factor_loadings`, `factor_diagnostics`) from a fit."""

from __future__ import annotations

import pandas as pd

from epiatlas.indices.fit import IndicesResult
from epiatlas.indices.settings import IndicesSettings

POOLED = "pooled"


def _fit_label(period: pd.Series) -> pd.Series:
    """'pooled' for the pooled fit's rows (period NA), else the period as text."""
    return period.astype("string").fillna(POOLED)


def index_tables(result: IndicesResult, settings: IndicesSettings) -> dict[str, pd.DataFrame]:
    """Scores, loadings (with each indicator's MSA) and per-factor diagnostics, keyed by table name."""
    loadings = result.loadings.assign(fit=_fit_label(result.loadings["period"]))
    msa = result.msa.assign(fit=_fit_label(result.msa["period"]))[["fit", "indicator", "msa"]]
    loadings = loadings.merge(msa, on=["fit", "indicator"], how="left")
    variance = result.variance.assign(fit=_fit_label(result.variance["period"]))
    diagnostics = result.diagnostics.assign(fit=_fit_label(result.diagnostics["period"])).drop(columns="period")
    diagnostics["n_factors_rule"] = "fixed" if settings.n_factors != "parallel" else "parallel analysis"
    diagnostics["warnings"] = "; ".join(result.warnings)
    per_factor = variance.rename(
        columns={"ss_loadings": "variance_explained", "proportion": "proportion_explained",
                 "cumulative": "cumulative_proportion"}
    ).merge(diagnostics, on="fit", how="left")  # fmt: skip
    return {
        "socioeconomic_indices": result.scores,
        "factor_loadings": loadings,
        "factor_diagnostics": per_factor,
    }
