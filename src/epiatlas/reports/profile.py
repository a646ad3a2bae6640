"""The `region_profile` mart: one row per region x period joining the public tables an analyst reads together.

Outcome columns come from `published_outcomes` only (never the private counts), so the mart inherits the one
disclosure rule of `epiatlas.disclosure.protect_outcomes`; model residuals come already blank where it hides.
"""

from __future__ import annotations

import pandas as pd

KEYS = ["region_id", "period"]
OUTCOME_COLUMNS = [
    "population", "cases", "deaths", "severe_cases", "expected_cases", "shr", "shr_lower", "shr_upper",
    "crude_rate", "crude_rate_lower", "crude_rate_upper", "std_rate", "std_rate_lower", "std_rate_upper",
    "suppressed", "suppression_threshold", "suppression",
]  # fmt: skip
IMAGING_COLUMNS = [
    "n_images", "share_normal", "share_bacterial", "share_viral", "share_covid19", "mean_lung_share",
    "share_off_lung",
]  # fmt: skip
N_DRIVERS = 3
COMPOSITE = "composite"
PM25 = "PM25"


def region_profile(
    published: pd.DataFrame,
    regions: pd.DataFrame,
    indices: pd.DataFrame | None = None,
    exposure: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    drivers: pd.DataFrame | None = None,
    imaging: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per row of `published` (region x period) with names, indices, PM2.5, GLM fit, drivers and imaging.

    Parameters
    ----------
    published : published_outcomes (the disclosure-controlled outcomes; its rows define the mart's rows).
    regions : regions (region_id, name, parent_id, parent_name).
    indices : socioeconomic_indices (long: region_id, period, index, score, quintile), or None.
    exposure : pollutant_exposure; its PM25 rows give mean, exceedance days, guideline and assignment method.
    predictions : model_predictions; the `glm` model of `cases` gives the fitted value and Pearson residual.
    drivers : region_drivers; the three largest SHAP contributions to `cases`, signed.
    imaging : cxr_region_summary, or None when there is no imaging group.
    """
    frame = published[KEYS + OUTCOME_COLUMNS].merge(
        regions[["region_id", "name", "parent_id", "parent_name"]], on="region_id", how="left", validate="m:1"
    )
    for part in (_indices(indices), _pm25(exposure), _glm(predictions), _drivers(drivers), _imaging(imaging)):
        frame = frame.merge(part, on=KEYS, how="left", validate="1:1")
    return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)


def _empty(columns: list[str]) -> pd.DataFrame:
    """No rows, for a table the configuration does not produce: its columns stay NULL in the mart."""
    keys = {"region_id": pd.Series(dtype="object"), "period": pd.Series(dtype="int64")}
    return pd.DataFrame(keys | {c: pd.Series(dtype="float64") for c in columns})


def _indices(indices: pd.DataFrame | None) -> pd.DataFrame:
    """Composite score and quintile as columns, every index's score and quintile as a map keyed by index name."""
    columns = ["composite_score", "composite_quintile", "index_scores", "index_quintiles"]
    if indices is None or indices.empty:
        return _empty(columns)
    ordered = indices.sort_values([*KEYS, "index"], kind="stable")
    maps = pd.DataFrame(
        [
            {"region_id": region, "period": period,
             "index_scores": _by_index(g["index"], g["score"], float),
             "index_quintiles": _by_index(g["index"], g["quintile"], int)}
            for (region, period), g in ordered.groupby(KEYS, sort=True)
        ]
    )  # fmt: skip
    composite = ordered[ordered["index"] == COMPOSITE][[*KEYS, "score", "quintile"]].rename(
        columns={"score": "composite_score", "quintile": "composite_quintile"}
    )
    return maps.merge(composite, on=KEYS, how="left", validate="1:1")[[*KEYS, *columns]]


def _by_index(names: pd.Series, values: pd.Series, kind: type) -> dict[str, object]:
    """{index name: value} with missing values as None."""
    return {k: (None if pd.isna(v) else kind(v)) for k, v in zip(names, values, strict=True)}


def _pm25(exposure: pd.DataFrame | None) -> pd.DataFrame:
    columns = {"mean": "pm25_mean", "exceedance_days": "pm25_exceedance_days", "guideline": "pm25_guideline",
               "assignment_method": "pm25_assignment"}  # fmt: skip
    if exposure is None or exposure.empty:
        return _empty(list(columns.values()))
    pm = exposure[exposure["pollutant"] == PM25]
    return pm[[*KEYS, *columns]].rename(columns=columns)


def _glm(predictions: pd.DataFrame | None) -> pd.DataFrame:
    if predictions is None or predictions.empty:
        return _empty(["glm_fitted", "glm_residual"])
    glm = predictions[(predictions["outcome"] == "cases") & (predictions["model"] == "glm")]
    return glm[[*KEYS, "fitted", "residual"]].rename(columns={"fitted": "glm_fitted", "residual": "glm_residual"})


def driver_columns() -> list[str]:
    """driver_k, driver_k_value, driver_k_shap for k = 1..3."""
    return [f"driver_{k}{suffix}" for k in range(1, N_DRIVERS + 1) for suffix in ("", "_value", "_shap")]


def _drivers(drivers: pd.DataFrame | None) -> pd.DataFrame:
    """The ranked SHAP drivers of cases side by side: feature name, its value and its signed contribution."""
    if drivers is None or drivers.empty:
        return _empty(driver_columns())
    cases = drivers[(drivers["outcome"] == "cases") & (drivers["rank"] <= N_DRIVERS)]
    wide = cases.pivot(index=KEYS, columns="rank", values=["feature", "feature_value", "shap_value"])
    names = {"feature": "", "feature_value": "_value", "shap_value": "_shap"}
    wide.columns = [f"driver_{rank}{names[field]}" for field, rank in wide.columns]
    return wide.reindex(columns=driver_columns()).reset_index()


def _imaging(imaging: pd.DataFrame | None) -> pd.DataFrame:
    if imaging is None or imaging.empty:
        return _empty([*IMAGING_COLUMNS, "imaging_suppressed"])
    return imaging[[*KEYS, *IMAGING_COLUMNS, "suppressed"]].rename(columns={"suppressed": "imaging_suppressed"})


def revealed_cells(profile: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Rows of the mart whose outcome columns differ from `published_outcomes`, or with a residual where it hides.

    Empty when the mart shows exactly what the published table shows, so it reveals no hidden count.
    """
    merged = profile[[*KEYS, *OUTCOME_COLUMNS, "glm_residual"]].merge(
        published[[*KEYS, *OUTCOME_COLUMNS]], on=KEYS, how="outer", suffixes=("", "_published"), indicator=True
    )
    bad = merged["_merge"] != "both"
    for column in OUTCOME_COLUMNS:
        mine, theirs = merged[column], merged[f"{column}_published"]
        same = (mine.isna() & theirs.isna()) | (mine == theirs).fillna(False).astype(bool)
        bad |= ~same
    bad |= merged["suppression_published"].notna() & merged["glm_residual"].notna()
    return merged.loc[bad, KEYS].reset_index(drop=True)
