"""The models group's public figures, drawn from public tables only (suppressed cells stay grey on maps)."""

from __future__ import annotations

import pandas as pd

from epiatlas.artifacts import FigureSpec
from epiatlas.models import plots
from epiatlas.models.plots import Size


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the latest period."""
    return frame[frame["period"] == frame["period"].max()]


def model_figures(
    coefficients: pd.DataFrame,
    pdp: pd.DataFrame,
    shap: pd.DataFrame,
    indices: pd.DataFrame | None,
    published: pd.DataFrame,
    predictions: pd.DataFrame,
    regions: pd.DataFrame,
    synthetic: bool,
    size: Size = "full",
) -> list[FigureSpec]:
    """Forest plot, PDP/ICE grid, SHAP beeswarm and maps of the composite index, the SHR and the GLM residual."""
    cases = coefficients[
        (coefficients["outcome"] == "cases") & coefficients["covariate_sd"].notna() & coefficients["rate_ratio"].notna()
    ]
    period = int(published["period"].max())
    figures = [] if cases.empty else [  # the elastic net may select no covariate: then there is nothing to plot
        FigureSpec(
            "glm_forest",
            "Case model: rate ratio per SD of each covariate the elastic net selected, 95% CI (post-selection refit).",
            plots.forest_plot(cases, "Hospitalization rate ratio per SD, selected covariates (95% CI, post-selection)", size),
        ),
    ]
    figures += [
        FigureSpec(
            "gbm_pdp_ice",
            "LightGBM partial dependence (rate ratio vs the median), ICE 10-90% band, GLM effect on the same axis.",
            plots.pdp_grid(pdp, size=size),
        ),
        FigureSpec("gbm_shap_beeswarm", "SHAP values per region-period (log rate ratio).", plots.shap_beeswarm(shap, size=size)),
        FigureSpec(
            "map_shr",
            f"Standardised hospitalization ratio, {period}; grey = suppressed.",
            plots.choropleth(regions, _latest(published), "shr", f"SHR {period}", "SHR", 1.0, synthetic, size),
        ),
    ]
    residuals = predictions[(predictions["model"] == "glm") & (predictions["outcome"] == "cases")]
    if len(residuals):
        last = _latest(residuals)
        figures.append(
            FigureSpec(
                "map_glm_residual",
                f"Pearson residual of the case GLM, {int(last['period'].iloc[0])}; grey = suppressed or not modelled.",
                plots.choropleth(regions, last, "residual", "GLM Pearson residual", "residual", 0.0, synthetic, size),
            )
        )
    if indices is not None and (indices["index"] == "composite").any():
        composite = _latest(indices[indices["index"] == "composite"])
        figures.append(
            FigureSpec(
                "map_composite_index",
                f"Composite deprivation index, {int(composite['period'].iloc[0])} (higher = more deprived).",
                plots.choropleth(regions, composite, "score", "Composite deprivation index", "score", None, synthetic, size),
            )
        )
    return figures
