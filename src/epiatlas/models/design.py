"""The design of one GLM: complete cases (dropped rows counted), standardised covariates, period dummies.

Degenerate input raises `ModelError` naming the cause: unknown or non-numeric covariate, all rows dropped,
all-zero outcome, constant or perfectly collinear covariates, fewer CV groups than folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from epiatlas.errors import ModelError
from epiatlas.models.settings import ModelSettings

Outcome = Literal["cases", "deaths", "severe_cases"]
OFFSET_COLUMNS = {"expected": "expected_cases", "population": "population"}


@dataclass(frozen=True)
class Design:
    """Rows kept for the fit, sorted by region and period; `X` holds standardised covariates then period dummies."""

    outcome: Outcome
    region_id: np.ndarray
    period: np.ndarray
    groups: np.ndarray
    y: np.ndarray
    trials: np.ndarray | None
    offset: np.ndarray
    X: pd.DataFrame
    penalized: np.ndarray
    covariate_mean: pd.Series
    covariate_sd: pd.Series
    n_input: int
    dropped: dict[str, int]

    @property
    def n_dropped(self) -> int:
        """Rows of the input left out of the fit."""
        return int(sum(self.dropped.values()))

    @property
    def dropped_reasons(self) -> str:
        """Rows left out per reason ('missing pm25: 10, missing cases: 2'), or 'none'."""
        return _describe(self.dropped) or "none"

    @property
    def covariates(self) -> list[str]:
        """Names of the (penalized) covariates, in settings order."""
        return list(self.covariate_sd.index)


def build_design(frame: pd.DataFrame, settings: ModelSettings, outcome: Outcome) -> Design:
    """Check, filter to complete cases and standardise `frame` for the GLM of `outcome`.

    Parameters
    ----------
    frame : one row per region x period: region_id, period, cases, expected_cases or population, the severity
        numerator for a severity model, parent_id when CV groups are parents, and the covariates.
    settings : model settings (covariates, offset, period effects, CV groups and folds).
    outcome : 'cases' (count model with a log offset) or 'deaths' / 'severe_cases' (binomial out of cases).
    """
    binomial = outcome != "cases"
    denominator = "cases" if binomial else OFFSET_COLUMNS[settings.offset]
    group_column = "parent_id" if settings.cv_group == "parent" else "region_id"
    _require_columns(frame, ["region_id", "period", outcome, denominator, group_column], settings.covariates)
    y = frame[outcome].to_numpy(dtype=float, na_value=np.nan)
    denom = frame[denominator].to_numpy(dtype=float, na_value=np.nan)
    keep, dropped = _complete_cases(frame, settings.covariates, y, denom, outcome, denominator)
    if binomial:
        _check_binomial(frame, y, denom, keep, outcome)
    if not keep.any():
        raise ModelError(
            f"all {len(frame)} rows were dropped for the {outcome} model ({_describe(dropped)}); "
            "supply the missing values or choose covariates with data"
        )
    rows = frame.loc[keep].assign(_y=y[keep], _d=denom[keep])
    rows = rows.sort_values(["region_id", "period"], kind="stable").reset_index(drop=True)
    if not (rows["_y"] > 0).any():
        raise ModelError(f"the outcome '{outcome}' is zero in all {len(rows)} rows kept; there is nothing to model")
    if rows[group_column].isna().any():
        raise ModelError(f"{int(rows[group_column].isna().sum())} rows have no {group_column}; CV groups need one")
    n_groups = rows[group_column].nunique()
    if n_groups < settings.cv_folds:
        raise ModelError(
            f"{n_groups} distinct {group_column} values in the rows kept but cv_folds={settings.cv_folds}: "
            "lower models.cv_folds, group by region, or supply more regions"
        )
    raw = rows[settings.covariates].astype(float)
    mean, sd = raw.mean(), raw.std(ddof=1)
    constant = [c for c in settings.covariates if not sd[c] > 0]
    if constant:
        raise ModelError(f"covariates {constant} are constant over the {len(rows)} rows kept; drop them")
    X = (raw - mean) / sd
    periods = _period_dummies(rows["period"]) if settings.period_effects else pd.DataFrame(index=rows.index)
    X = pd.concat([X, periods], axis=1)
    _check_full_rank(X)
    return Design(
        outcome=outcome,
        region_id=rows["region_id"].to_numpy(),
        period=rows["period"].to_numpy(),
        groups=rows[group_column].to_numpy(),
        y=rows["_y"].to_numpy(),
        trials=rows["_d"].to_numpy() if binomial else None,
        offset=np.zeros(len(rows)) if binomial else np.log(rows["_d"].to_numpy()),
        X=X,
        penalized=np.array([c in settings.covariates for c in X.columns]),
        covariate_mean=mean,
        covariate_sd=sd,
        n_input=len(frame),
        dropped=dropped,
    )


def _require_columns(frame: pd.DataFrame, required: list[str], covariates: list[str]) -> None:
    """Raise on missing structural columns, unknown covariates and non-numeric covariates."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ModelError(f"the model frame lacks columns {missing}; it has {sorted(map(str, frame.columns))}")
    unknown = [c for c in covariates if c not in frame.columns]
    if unknown:
        raise ModelError(
            f"unknown covariates {unknown} in models.covariates; available columns: {sorted(map(str, frame.columns))}"
        )
    text = [c for c in covariates if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise ModelError(f"covariates {text} are not numeric; only numeric columns can enter the model")


def _complete_cases(
    frame: pd.DataFrame, covariates: list[str], y: np.ndarray, denom: np.ndarray, outcome: str, denominator: str
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows usable for the fit and the count dropped per reason (first reason wins, so counts add up)."""
    reasons = {
        f"missing {outcome}": np.isnan(y),
        f"missing or zero {denominator}": ~(denom > 0),
        "missing period": frame["period"].isna().to_numpy(),
    }
    for c in covariates:
        reasons[f"missing {c}"] = frame[c].isna().to_numpy()
    taken = np.zeros(len(frame), dtype=bool)
    dropped: dict[str, int] = {}
    for reason, mask in reasons.items():
        new = mask & ~taken
        if new.any():
            dropped[reason] = int(new.sum())
        taken |= mask
    return ~taken, dropped


def _check_binomial(frame: pd.DataFrame, y: np.ndarray, trials: np.ndarray, keep: np.ndarray, outcome: str) -> None:
    """A severity count must be a whole number between 0 and the cases of its row."""
    bad = keep & ((y < 0) | (y > trials) | (y != np.round(y)))
    if bad.any():
        first = frame.loc[bad].iloc[0]
        raise ModelError(
            f"{int(bad.sum())} rows have {outcome} outside 0..cases (first: region {first['region_id']}, "
            f"period {first['period']}, {outcome}={first[outcome]}, cases={first['cases']}); fix the counts"
        )


def _describe(dropped: dict[str, int]) -> str:
    """'missing pm25: 10, missing cases: 2'."""
    return ", ".join(f"{reason}: {n}" for reason, n in dropped.items())


def _period_dummies(period: pd.Series) -> pd.DataFrame:
    """One indicator per period after the first (the reference); none for a single period."""
    levels = sorted(period.unique())
    return pd.DataFrame({f"period_{p}": (period == p).astype(float) for p in levels[1:]}, index=period.index)


def _check_full_rank(X: pd.DataFrame) -> None:
    """Raise naming the first column that is a linear combination of the intercept and earlier columns."""
    matrix = np.column_stack([np.ones(len(X)), X.to_numpy()])
    if np.linalg.matrix_rank(matrix) == matrix.shape[1]:
        return
    names = ["intercept", *X.columns]
    for j in range(1, matrix.shape[1]):
        if np.linalg.matrix_rank(matrix[:, : j + 1]) <= j:
            coef = np.linalg.lstsq(matrix[:, :j], matrix[:, j], rcond=None)[0]
            partners = [names[k] for k in range(j) if abs(coef[k]) > 1e-8]
            raise ModelError(
                f"covariate '{names[j]}' is perfectly collinear with {partners} in the rows kept; drop one of them"
            )
