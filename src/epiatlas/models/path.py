"""Elastic-net regularization path with glum and its grouped K-fold cross-validation.

glum minimises  deviance / (2 Σ s) + α l1_ratio ‖w‖₁ + α (1 − l1_ratio) ‖w‖² / 2  (penalized columns only).
Its automatic α grid ignores the offset, so the grid here is explicit: it starts at the smallest α that zeroes
every penalized coefficient of the model *with* its offset and unpenalized columns (intercept, periods).
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass

import numpy as np

from epiatlas.errors import ModelError
from epiatlas.models.design import Design
from epiatlas.models.families import Family

# glum's default gradient_tol 1e-4 can stop the path early; 1e-6 meets the KKT conditions to ~1e-6 of alpha.
# Tighter tolerances hit float precision (line-search failures, max_iter reached), which the step-size rule ends.
GRADIENT_TOL = 1e-6
STEP_SIZE_TOL = 1e-10
MAX_ITER = 100


@dataclass(frozen=True)
class Path:
    """Intercept and coefficients (columns of `Design.X`) at each α of a decreasing grid."""

    alphas: np.ndarray
    intercepts: np.ndarray
    coefs: np.ndarray

    def linear_predictor(self, X: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """η per α and row, shape (n_alphas, n_rows)."""
        return self.intercepts[:, None] + self.coefs @ X.T + offset[None, :]


@dataclass(frozen=True)
class CrossValidation:
    """Held-out deviance summed per α and fold, the rows per fold and each row's fold."""

    folds: np.ndarray
    deviance: np.ndarray
    poisson_deviance: np.ndarray
    n: np.ndarray

    def mean(self) -> np.ndarray:
        """Mean held-out unit deviance per α (all folds pooled)."""
        return self.deviance.sum(axis=1) / self.n.sum()

    def standard_error(self) -> np.ndarray:
        """Standard error of the CV deviance per α from the spread of the per-fold means."""
        per_fold = self.deviance / self.n[None, :]
        return per_fold.std(axis=1, ddof=1) / np.sqrt(per_fold.shape[1])


def glum_inputs(design: Design, rows: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray | None]:
    """Target, sample weights and offset of glum's fit: rate y/n with weight n for the binomial, counts otherwise."""
    w = np.ones(len(rows)) if weights is None else weights
    if design.trials is None:
        return {"y": design.y[rows], "sample_weight": w, "offset": design.offset[rows]}
    trials = design.trials[rows]
    return {"y": design.y[rows] / trials, "sample_weight": w * trials, "offset": None}


def alpha_grid(
    design: Design, family: Family, null_mu: np.ndarray, l1_ratio: float, n: int, ratio: float
) -> np.ndarray:
    """Log-spaced α from the all-zero penalty α_max down to `ratio` α_max.

    Parameters
    ----------
    design : the design (penalized columns marked).
    family : family with its fixed dispersion.
    null_mu : fitted counts of the model with only the unpenalized columns and the offset.
    l1_ratio : elastic-net mixing; α_max = max_j |score_j| / (Σ s · l1_ratio).
    n, ratio : number of α and smallest / largest.

    References
    ----------
    Friedman J, Hastie T, Tibshirani R. Regularization paths for generalized linear models via coordinate
    descent. Journal of Statistical Software 2010;33(1), section 2.5.
    """
    X = design.X.to_numpy()[:, design.penalized]
    score = X.T @ family.score_residual(design.y, null_mu, design.trials)
    total_weight = float(design.trials.sum()) if design.trials is not None else float(len(design.y))
    alpha_max = float(np.abs(score).max()) / (total_weight * l1_ratio)
    return np.geomspace(alpha_max, alpha_max * ratio, n)


def fit_path(
    design: Design,
    family: Family,
    alphas: np.ndarray,
    l1_ratio: float,
    rows: np.ndarray,
    weights: np.ndarray | None = None,
) -> Path:
    """Fit the penalized GLM on `rows` at every α (warm starts along the path), tight gradient tolerance."""
    from glum import GeneralizedLinearRegressor

    penalty = design.penalized.astype(float)
    model = GeneralizedLinearRegressor(
        family=family.glum(),
        link="logit" if family.name == "binomial" else "log",
        alpha=[float(a) for a in alphas] if len(alphas) > 1 else float(alphas[0]),
        alpha_search=len(alphas) > 1,
        l1_ratio=l1_ratio,
        P1=penalty,
        P2=penalty,
        gradient_tol=GRADIENT_TOL,
        step_size_tol=STEP_SIZE_TOL,
        max_iter=MAX_ITER,
        scale_predictors=False,
    )
    with warnings.catch_warnings():
        # Near the optimum glum's line search can stop short of a step it no longer needs; the path still meets the
        # optimality conditions to GRADIENT_TOL (tests/test_glm.py checks them), and a user cannot act on it.
        warnings.filterwarnings("ignore", message="Line search failed")
        model.fit(np.ascontiguousarray(design.X.to_numpy()[rows]), **glum_inputs(design, rows, weights))
    if len(alphas) > 1:
        return Path(np.asarray(alphas), np.asarray(model.intercept_path_), np.asarray(model.coef_path_))
    return Path(np.asarray(alphas), np.array([model.intercept_]), np.asarray(model.coef_)[None, :])


def cross_validate(
    design: Design, family: Family, alphas: np.ndarray, l1_ratio: float, folds: np.ndarray
) -> CrossValidation:
    """Held-out deviance of the path fitted without each fold (folds group rows by region or parent)."""
    X = design.X.to_numpy()
    n_folds = int(folds.max()) + 1
    deviance = np.zeros((len(alphas), n_folds))
    poisson = np.zeros((len(alphas), n_folds))
    for k in range(n_folds):
        test = np.flatnonzero(folds == k)
        train = np.flatnonzero(folds != k)
        try:
            path = fit_path(design, family, alphas, l1_ratio, train)
        except np.linalg.LinAlgError:
            groups = len(np.unique(design.groups[train]))
            raise ModelError(
                f"cross-validation fold {k + 1} of {n_folds}: the {len(train)} training rows ({groups} CV groups) "
                f"cannot identify the {design.outcome} model (a covariate is constant or collinear there, which "
                "happens with very few regions); add regions or keep models.glm.penalty "
                "on (the ridge part keeps the fit defined)"
            ) from None
        trials = None if design.trials is None else design.trials[test]
        mu = family.mean(path.linear_predictor(X[test], design.offset[test]), trials)
        y = design.y[test][None, :]
        deviance[:, k] = family.unit_deviance(y, mu, trials).sum(axis=1)
        poisson[:, k] = Family("poisson").unit_deviance(y, mu, None).sum(axis=1)
    n = np.bincount(folds, minlength=n_folds).astype(float)
    return CrossValidation(folds=folds, deviance=deviance, poisson_deviance=poisson, n=n)


def choose_alpha(cv: CrossValidation, one_se_rule: bool) -> int:
    """Index of the α with the least CV deviance, or with the 1-SE rule the largest α within one SE of it."""
    mean = cv.mean()
    best = int(np.argmin(mean))
    if not one_se_rule:
        return best
    threshold = mean[best] + cv.standard_error()[best]
    return int(np.flatnonzero(mean[: best + 1] <= threshold)[0])
