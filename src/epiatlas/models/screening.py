"""Covariates a GLM can estimate: those with no values, constant or collinear in the rows used are dropped with a
recorded reason (never a solver failure), and CV folds are capped at the number of groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epiatlas.errors import ModelError
from epiatlas.models.design import OFFSET_COLUMNS
from epiatlas.models.settings import ModelSettings

RANK_TOL = 1e-9


@dataclass(frozen=True)
class Screening:
    """The covariates kept, those dropped with the reason, and notes on settings adapted to the data."""

    kept: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    cv_folds: int = 5
    notes: list[str] = field(default_factory=list)


def _usable_rows(frame: pd.DataFrame, covariates: list[str], denominator: str) -> pd.Series:
    """Rows with the outcome, a positive denominator, a period and every covariate (the GLM's complete cases)."""
    ok = frame["cases"].notna() & (frame[denominator] > 0) & frame["period"].notna()
    return ok & frame[covariates].notna().all(axis=1) if covariates else ok


def _collinear(X: np.ndarray, names: list[str], fixed: np.ndarray) -> dict[str, str]:
    """Each column that is a linear combination of the intercept, `fixed` (period dummies) and earlier columns."""
    basis = np.column_stack([np.ones(len(X)), fixed])
    dropped: dict[str, str] = {}
    kept: list[str] = []
    for j, name in enumerate(names):
        column = X[:, j]
        trial = np.column_stack([basis, column])
        scale = np.linalg.norm(trial, axis=0)
        scale[scale == 0] = 1
        if np.linalg.matrix_rank(trial / scale, tol=RANK_TOL * len(X)) < trial.shape[1]:
            coef = np.linalg.lstsq(basis, column, rcond=None)[0]
            partners = [n for n, c in zip(["intercept", *(["period"] * fixed.shape[1]), *kept], coef, strict=True)
                        if abs(c) > 1e-8]  # fmt: skip
            dropped[name] = f"collinear with {sorted(set(partners)) or ['intercept']} in the rows used"
            continue
        basis, kept = trial, [*kept, name]
    return dropped


def screen_covariates(frame: pd.DataFrame, covariates: list[str], settings: ModelSettings) -> Screening:
    """Drop covariates without values, constant or collinear over the complete cases; cap folds at the groups.

    Parameters
    ----------
    frame : the model frame (one row per region x period).
    covariates : candidate covariate columns, in order; an earlier one is kept over a later one it is collinear with.
    settings : the GLM settings (offset, period effects, CV folds and groups).
    """
    denominator = OFFSET_COLUMNS[settings.offset]
    dropped = {c: "no values in any region-period" for c in covariates if frame[c].isna().all()}
    candidates = [c for c in covariates if c not in dropped]
    rows = frame.loc[_usable_rows(frame, candidates, denominator)]
    dropped |= {c: f"constant over the {len(rows)} region-periods used" for c in candidates
                if rows[c].nunique(dropna=True) < 2}  # fmt: skip
    candidates = [c for c in candidates if c not in dropped]
    rows = frame.loc[_usable_rows(frame, candidates, denominator)]
    if candidates and len(rows):
        periods = sorted(rows["period"].unique())[1:] if settings.period_effects else []
        fixed = np.column_stack([(rows["period"] == p).to_numpy(float) for p in periods]) if periods else \
            np.empty((len(rows), 0))
        dropped |= _collinear(rows[candidates].to_numpy(float), candidates, fixed)
    kept = [c for c in covariates if c not in dropped]
    if not kept:
        reasons = "; ".join(f"{c}: {why}" for c, why in dropped.items()) or "none were given"
        raise ModelError(f"no covariate can enter the count models ({reasons}); give covariates that vary between "
                         "regions (models.covariates) or switch the models off (models.enabled: false)")
    rows = frame.loc[_usable_rows(frame, kept, denominator)]
    group = "parent_id" if settings.cv_group == "parent" else "region_id"
    n_groups = int(rows[group].nunique())
    if n_groups < 2:
        raise ModelError(f"cross-validation needs at least 2 distinct {group} values with complete data, found "
                         f"{n_groups}; add regions or use cv_group: region")
    notes = [f"covariate {c} dropped: {why}" for c, why in dropped.items()]
    folds = settings.cv_folds
    if n_groups < folds:
        folds = n_groups
        notes.append(f"models.glm.cv_folds {settings.cv_folds} lowered to {folds}: only {n_groups} distinct {group} "
                     f"values have complete data")
    return Screening(kept, dropped, folds, notes)
