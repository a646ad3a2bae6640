"""The modelling table: one row per region x period with outcomes, offsets and every candidate covariate.

Exposures arrive long (one row per pollutant) and indices long (one row per index); both are pivoted to one
column each (`pm25`, `index_<name>`). User covariates without a period apply to every period. Imaging covariates
come from the public, suppressed `cxr_region_summary` only (never per-image rows).
"""

from __future__ import annotations

import pandas as pd

from epiatlas.errors import ModelError
from epiatlas.models.config import PNEUMONIA_CLASSES

OUTCOME_COLUMNS = ["region_id", "period", "cases", "deaths", "severe_cases", "population", "expected_cases"]


def exposure_columns(exposure: pd.DataFrame) -> pd.DataFrame:
    """Annual mean concentration per pollutant as columns named after the pollutant in lower case (`pm25`)."""
    wide = exposure.pivot(index=["region_id", "period"], columns="pollutant", values="mean")
    wide.columns = [str(c).lower() for c in wide.columns]
    return wide.reset_index()


def index_columns(indices: pd.DataFrame) -> pd.DataFrame:
    """Index scores as columns `index_<name>`."""
    wide = indices.pivot(index=["region_id", "period"], columns="index", values="score")
    wide.columns = [f"index_{c}" for c in wide.columns]
    return wide.reset_index()


def imaging_columns(summary: pd.DataFrame, chosen: list[str]) -> pd.DataFrame:
    """The chosen class shares per region x period of the published rows (suppressed rows are NULL already).

    `share_pneumonia` (`mean_p_pneumonia`) is the sum over bacterial, viral and covid19; a NULL part keeps it NULL.
    """
    out = summary.assign(**{
        f"{kind}_pneumonia": sum(summary[f"{kind}_{c}"] for c in PNEUMONIA_CLASSES) for kind in ("share", "mean_p")
    })  # fmt: skip
    return out.loc[~out["suppressed"].astype(bool), ["region_id", "period", *chosen]]


def imaging_coverage(frame: pd.DataFrame, summary: pd.DataFrame) -> dict[str, int]:
    """Region-periods of the model frame with a published imaging summary, a suppressed one, or no images."""
    cells = frame[["region_id", "period"]].merge(summary[["region_id", "period", "suppressed"]], how="left")
    status = cells["suppressed"].map({False: "with_imaging", True: "imaging_suppressed"}).fillna("without_images")
    counts = status.value_counts()
    return {f"region_periods_{s}": int(counts.get(s, 0))
            for s in ("with_imaging", "imaging_suppressed", "without_images")}  # fmt: skip


def join_covariates(tables: list[pd.DataFrame]) -> pd.DataFrame | None:
    """User covariate tables joined on their keys (region x period where both have a period, else region)."""
    if not tables:
        return None
    merged = tables[0]
    for other in tables[1:]:
        keys = ["region_id", "period"] if "period" in merged.columns and "period" in other.columns else ["region_id"]
        merged = merged.merge(other, on=keys, how="outer")
    return merged


def model_frame(
    outcomes: pd.DataFrame,
    regions: pd.DataFrame,
    exposure: pd.DataFrame | None = None,
    indices: pd.DataFrame | None = None,
    covariates: pd.DataFrame | None = None,
    imaging: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Join outcomes with the parent region and every covariate source; rows are never dropped here.

    Missing covariates stay NULL (NaN) so the model step can count and report the rows it drops. `imaging` is
    `imaging_columns` of the region summary (regions without images or with a suppressed summary stay NULL).
    """
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise ModelError(f"the outcomes table lacks columns {missing}; materialize region_period_outcomes first")
    frame = outcomes[OUTCOME_COLUMNS].merge(regions[["region_id", "parent_id"]], on="region_id", how="left")
    keys = ["region_id", "period"]
    for extra in (
        exposure_columns(exposure) if exposure is not None and len(exposure) else None,
        index_columns(indices) if indices is not None and len(indices) else None,
        imaging,
    ):
        if extra is not None:
            frame = frame.merge(extra, on=keys, how="left")
    if covariates is not None and len(covariates):
        on = keys if "period" in covariates.columns else ["region_id"]
        clash = sorted((set(covariates.columns) - set(on)) & set(frame.columns))
        if clash:
            raise ModelError(f"user covariates {clash} clash with built-in columns; rename them in the config")
        frame = frame.merge(covariates, on=on, how="left")
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
