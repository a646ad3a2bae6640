"""LightGBM Poisson model of counts with an offset, its boosting rounds chosen by grouped K-fold CV.

The model is log(mu) = log(offset) + intercept + F(x): `intercept` is the log of the overall observed/expected
ratio of the training rows and, with log(offset), forms LightGBM's `init_score`; the trees F fit the rest.
(LightGBM does not boost from the average when an init_score is given, and its Poisson steps are capped by
`poisson_max_delta_step`, so without the intercept the first hundred trees would only learn the overall level.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from epiatlas.errors import ModelError
from epiatlas.models.families import Family
from epiatlas.models.folds import grouped_folds
from epiatlas.models.threads import fit_threads

if TYPE_CHECKING:
    import lightgbm

POISSON = Family("poisson")


class GbmSettings(BaseModel):
    """Hyper-parameters of the LightGBM Poisson model and of the CV that chooses its number of rounds."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    num_leaves: int = Field(
        7, ge=2, description="maximum leaves per tree; small trees suit mostly additive effects and keep TreeSHAP "
        "cheap (its cost grows with leaves x depth^2 per tree)"
    )
    learning_rate: float = Field(0.1, gt=0.0, le=1.0)
    max_rounds: int = Field(1000, ge=1, description="upper bound on boosting rounds")
    early_stopping_rounds: int = Field(
        50, ge=1, description="stop when the mean CV deviance has not improved for this many rounds"
    )
    min_data_in_leaf: int = Field(20, ge=1)
    feature_fraction: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = Field(0, ge=0, description="seed of the folds, LightGBM's sampling and PDP row samples")
    cv_folds: int = Field(5, ge=2, description="grouped CV folds when none are given")
    deterministic: bool = True
    num_threads: int = Field(1, ge=1)

    def lightgbm_params(self) -> dict[str, object]:
        """LightGBM parameters: Poisson objective, row-wise histograms, fixed seeds and thread count."""
        return {
            "objective": "poisson",
            "metric": "None",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "seed": self.seed,
            "deterministic": self.deterministic,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }


def poisson_deviance_sum(y: np.ndarray, mu: np.ndarray) -> float:
    """Sum over rows of the Poisson unit deviance 2 (y log(y/mu) - (y - mu)), the GLM's own definition."""
    return float(POISSON.unit_deviance(np.asarray(y, np.float64), np.asarray(mu, np.float64), None).sum())


@dataclass(frozen=True)
class GbmResult:
    """A fitted GBM: the final booster (all rows, `n_rounds` trees), the rows it saw and its CV record."""

    booster: lightgbm.Booster
    settings: GbmSettings
    covariates: tuple[str, ...]
    outcome: str
    offset_col: str
    data: pd.DataFrame  # the complete-case rows used, in input order, index reset
    folds: np.ndarray  # CV fold per row of `data`
    intercept: float  # log(sum outcome / sum offset) over `data`, part of the init_score
    n_rounds: int
    n_dropped: int  # rows dropped for a missing covariate (complete cases)
    cv_path: np.ndarray  # CV deviance (pooled mean over held-out rows) after 1, 2, ... rounds
    cv_table: pd.DataFrame  # fold, n, deviance (GBM at n_rounds), null_deviance (constant rate); sums per fold

    @property
    def cv_deviance(self) -> float:
        """Held-out Poisson deviance per row, all folds pooled, at the chosen rounds (as the GLM's CV deviance)."""
        return float(self.cv_table["deviance"].sum() / self.cv_table["n"].sum())

    def log_rate_ratio(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """log(mu / offset) = intercept + trees, per row of `frame` (default: the rows fit)."""
        x = covariate_matrix(self.data if frame is None else frame, self.covariates)
        with fit_threads(openmp=self.settings.num_threads):
            return self.intercept + self.booster.predict(x, raw_score=True, num_threads=self.settings.num_threads)

    def predict(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Fitted counts mu = offset * exp(log rate ratio), per row of `frame` (default: the rows fit)."""
        x = self.data if frame is None else frame
        return x[self.offset_col].to_numpy(np.float64) * np.exp(self.log_rate_ratio(x))


def covariate_matrix(frame: pd.DataFrame, covariates: Sequence[str]) -> np.ndarray:
    """The covariates as a float64 matrix (rows x covariates); NaN stays NaN."""
    return frame.loc[:, list(covariates)].to_numpy(dtype=np.float64, na_value=np.nan)


def model_rows(
    frame: pd.DataFrame, covariates: Sequence[str], outcome: str, offset_col: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Validated complete-case rows and the boolean mask of the input rows kept; ModelError on bad input."""
    names = list(covariates)
    if not names:
        raise ModelError("no covariates given: name at least one numeric column of the model frame")
    if len(set(names)) != len(names):
        raise ModelError(f"covariates listed more than once: {sorted({c for c in names if names.count(c) > 1})}")
    missing = [c for c in [*names, outcome, offset_col] if c not in frame.columns]
    if missing:
        raise ModelError(
            f"unknown column(s) {missing}: not in the model frame, whose columns are {sorted(map(str, frame.columns))}"
        )
    if frame.empty:
        raise ModelError("the model frame has no rows")
    for col in names:
        if not (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col])):
            raise ModelError(f"covariate {col!r} has dtype {frame[col].dtype}, not numeric: encode it as numbers")
    x = covariate_matrix(frame, names)
    infinite = np.isinf(x).any(axis=0)
    if infinite.any():
        raise ModelError(f"covariate(s) {[c for c, bad in zip(names, infinite) if bad]} hold infinite values")
    y = frame[outcome].to_numpy(np.float64, na_value=np.nan)
    offset = frame[offset_col].to_numpy(np.float64, na_value=np.nan)
    _require_rows(~np.isfinite(y) | (y < 0), frame, f"outcome {outcome!r} must be a finite count >= 0")
    _require_rows(~np.isfinite(offset) | (offset <= 0), frame, f"offset {offset_col!r} must be finite and > 0")
    keep = ~np.isnan(x).any(axis=1)
    if not keep.any():
        raise ModelError(f"every row has a missing value in one of the covariates {names}: no complete cases")
    rows = frame.loc[keep].reset_index(drop=True)
    if not (rows[outcome].to_numpy(np.float64) > 0).any():
        raise ModelError(f"outcome {outcome!r} is zero in every row: there is nothing to model")
    return rows, keep


def _require_rows(bad: np.ndarray, frame: pd.DataFrame, rule: str) -> None:
    """Raise ModelError naming the rule, how many rows break it and the first such row."""
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        where = f"region_id {frame['region_id'].iloc[first]}" if "region_id" in frame.columns else f"row {first}"
        raise ModelError(f"{rule}: {int(bad.sum())} row(s) break this, the first at {where}; fix or drop them")


def fit_gbm(
    frame: pd.DataFrame,
    covariates: Sequence[str],
    outcome: str = "cases",
    offset_col: str = "expected_cases",
    folds: np.ndarray | None = None,
    settings: GbmSettings | None = None,
    group_col: str = "region_id",
) -> GbmResult:
    """Fit a LightGBM Poisson model with offset; choose its rounds by early stopping on grouped K-fold CV.

    All K fold models grow in lockstep; after each round the held-out Poisson deviance of every fold is summed
    and divided by the number of rows (the GLM's CV deviance), and boosting stops when it has not improved for
    `early_stopping_rounds`. The round with the lowest CV deviance is chosen and a final model with that many rounds is fit on all rows.
    Rows with a missing covariate are dropped (complete cases, counted in `n_dropped`), as the GLM does.

    Parameters
    ----------
    frame : one row per region x period with the covariates, the outcome and the offset.
    covariates : numeric columns entering the model.
    outcome : count column (non-negative, not all zero).
    offset_col : expected counts (or population), > 0; log(offset) enters the init_score.
    folds : CV fold per row of `frame` (e.g. the GLM's folds, so deviances are comparable); default
        `grouped_folds(frame[group_col], settings.cv_folds, settings.seed)`.
    settings : hyper-parameters; default `GbmSettings()`.
    group_col : column grouping rows into CV folds when `folds` is not given.

    References
    ----------
    Ke G et al. LightGBM: a highly efficient gradient boosting decision tree. NeurIPS 2017.
    Hastie T, Tibshirani R, Friedman J. The Elements of Statistical Learning, 2nd ed., 2009, sections 7.10, 10.12.
    """
    settings = settings or GbmSettings()
    rows, keep = model_rows(frame, covariates, outcome, offset_col)
    fold = _folds(frame, keep, folds, settings, group_col)
    x = covariate_matrix(rows, covariates)
    y = rows[outcome].to_numpy(np.float64)
    offset = rows[offset_col].to_numpy(np.float64)
    with fit_threads(openmp=settings.num_threads):
        cv_path, fold_deviance, n_rounds = _cross_validate(x, y, offset, fold, list(covariates), settings)
        booster = _train(x, y, offset, list(covariates), settings, n_rounds)
    cv_table = pd.DataFrame(
        {
            "fold": np.arange(fold.max() + 1),
            "n": np.bincount(fold),
            "deviance": fold_deviance,
            "null_deviance": [_null_deviance(y, offset, fold == k) for k in range(fold.max() + 1)],
        }
    )
    return GbmResult(
        booster=booster,
        settings=settings,
        covariates=tuple(covariates),
        outcome=outcome,
        offset_col=offset_col,
        data=rows,
        folds=fold,
        intercept=_intercept(y, offset),
        n_rounds=n_rounds,
        n_dropped=int((~keep).sum()),
        cv_path=cv_path,
        cv_table=cv_table,
    )


def _folds(
    frame: pd.DataFrame, keep: np.ndarray, folds: np.ndarray | None, settings: GbmSettings, group_col: str
) -> np.ndarray:
    """Fold per kept row, given or grouped by `group_col`, renumbered 0..K-1; ModelError when unusable."""
    if folds is None:
        if group_col not in frame.columns:
            raise ModelError(f"CV group column {group_col!r} is not in the model frame; pass folds or group_col")
        return grouped_folds(frame.loc[keep, group_col], settings.cv_folds, settings.seed)
    folds = np.asarray(folds)
    if folds.shape != (len(frame),):
        raise ModelError(f"folds has shape {folds.shape}, expected one fold per frame row ({len(frame)},)")
    codes, uniques = pd.factorize(pd.Series(folds[keep]), sort=True)
    if (codes < 0).any():
        raise ModelError(f"{int((codes < 0).sum())} complete-case row(s) have no CV fold (NaN in folds)")
    if len(uniques) < 2:
        raise ModelError(f"the complete-case rows fall in {len(uniques)} CV fold(s); at least 2 are needed")
    return codes.astype(np.int64)


def _intercept(y: np.ndarray, offset: np.ndarray) -> float:
    """log of the overall observed / expected ratio: the constant-rate model's log rate ratio."""
    return float(np.log(y.sum() / offset.sum()))


def _null_deviance(y: np.ndarray, offset: np.ndarray, test: np.ndarray) -> float:
    """Held-out deviance (sum) of the constant-rate model fit on the other folds."""
    ratio = np.exp(_intercept(y[~test], offset[~test]))
    return poisson_deviance_sum(y[test], offset[test] * ratio)


def _dataset(x: np.ndarray, y: np.ndarray, offset: np.ndarray, names: list[str], intercept: float, **kw: object):
    """A LightGBM Dataset with init_score = log(offset) + intercept."""
    import lightgbm as lgb

    # verbosity here too: without it the Dataset prints LightGBM's warnings (e.g. no feature to split on, a tiny
    # data set) on the console, which the user cannot act on; the model's fit is unchanged.
    return lgb.Dataset(x, y, init_score=np.log(offset) + intercept, feature_name=names, free_raw_data=False,
                       params={"verbosity": -1}, **kw)


def _cross_validate(
    x: np.ndarray, y: np.ndarray, offset: np.ndarray, fold: np.ndarray, names: list[str], settings: GbmSettings
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grow one booster per fold in lockstep; return the CV deviance path, per-fold deviance sums, best rounds."""
    import lightgbm as lgb

    params = settings.lightgbm_params()
    boosters = []
    for k in range(fold.max() + 1):
        test = fold == k
        intercept = _intercept(y[~test], offset[~test])
        train = _dataset(x[~test], y[~test], offset[~test], names, intercept)
        booster = lgb.Booster(params, train)
        booster.add_valid(_dataset(x[test], y[test], offset[test], names, intercept, reference=train), "test")
        boosters.append((booster, y[test]))

    path: list[np.ndarray] = []
    best = 0
    for round_ in range(settings.max_rounds):
        per_fold = []
        for booster, y_test in boosters:
            booster.update()
            # LightGBM hands feval the held-out fitted counts, init_score (offset) included
            ((_, _, value, _),) = booster.eval_valid(
                lambda mu, _data, y_test=y_test: ("deviance", poisson_deviance_sum(y_test, mu), False)
            )
            per_fold.append(value)
        path.append(np.array(per_fold))
        if path[-1].sum() < path[best].sum():
            best = round_
        elif round_ - best >= settings.early_stopping_rounds:
            break
    return np.array([p.sum() for p in path]) / len(y), path[best], best + 1


def _train(
    x: np.ndarray, y: np.ndarray, offset: np.ndarray, names: list[str], settings: GbmSettings, n_rounds: int
) -> lightgbm.Booster:
    """The final booster: `n_rounds` rounds on all rows."""
    import lightgbm as lgb

    train = _dataset(x, y, offset, names, _intercept(y, offset))
    return lgb.train(settings.lightgbm_params(), train, num_boost_round=n_rounds)
