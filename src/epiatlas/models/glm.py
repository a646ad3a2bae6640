"""Penalized count regression of hospitalization burden: case counts (Poisson / negative binomial with a log
offset) and severity (binomial out of cases), elastic net chosen by grouped CV, unpenalized post-selection
inference with statsmodels.

glum fits the penalty path (fast, converges to the optimum); statsmodels gives the unpenalized refit's standard
errors and intervals (its `fit_regularized` is much slower and stops short of the optimum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from epiatlas.models.design import Design, build_design
from epiatlas.models.diagnostics import (
    MIN_MORAN_REGIONS,
    MoranResult,
    connected_regions,
    moran_permutation,
    variance_inflation,
)
from epiatlas.models.dispersion import (
    NegativeBinomialDispersion,
    OverdispersionTest,
    negative_binomial_dispersion,
    overdispersion_test,
)
from epiatlas.models.families import Family
from epiatlas.models.folds import grouped_folds
from epiatlas.models.path import CrossValidation, alpha_grid, choose_alpha, cross_validate, fit_path
from epiatlas.models.selection import selection_frequency
from epiatlas.models.settings import ModelSettings
from epiatlas.models.threads import fit_threads

MODEL_NAME = "glm"
REFIT_TOL = 1e-12


@dataclass(frozen=True)
class CountModelResult:
    """A fitted count or severity GLM with tidy frames shaped like the published tables.

    `coefficients`: one row per term (intercept, covariates, period dummies); effects per SD of the covariate
    (`estimate`, `rate_ratio`, CI) and per original unit (`estimate_per_unit`, with `covariate_sd` used).
    For the binomial severity model `rate_ratio` is the odds ratio. `fit`: one row of fit statistics.
    `predictions`: fitted counts and Pearson residuals per region x period fitted. `cv_path`: CV deviance per α.
    `moran`: Moran's I of the mean Pearson residual per region over the periods fitted (None without weights).
    `cv_deviance_by_fold`: held-out deviance per α and fold (Poisson deviance too, to compare with the GBM).
    `folds`: the CV fold of every row fitted, so other models can use the very same folds.
    """

    outcome: str
    family: Family
    alpha: float
    coefficients: pd.DataFrame
    fit: pd.DataFrame
    predictions: pd.DataFrame
    cv_path: pd.DataFrame
    cv_deviance_by_fold: pd.DataFrame
    folds: pd.DataFrame
    vif: pd.Series
    dropped: dict[str, int]
    overdispersion: OverdispersionTest | None
    nb_dispersion: NegativeBinomialDispersion | None
    moran: MoranResult | None
    refit: object


def fit_count_model(frame: pd.DataFrame, settings: ModelSettings, contiguity: object | None = None) -> CountModelResult:
    """Cases with a log(expected_cases) (or log(population)) offset; negative binomial when overdispersed.

    Parameters
    ----------
    frame : one row per region x period (see `build_design`).
    settings : model settings.
    contiguity : optional libpysal W over region ids (queen contiguity) for Moran's I of the residuals.

    References
    ----------
    Cameron AC, Trivedi PK. Regression Analysis of Count Data, 2nd ed. Cambridge University Press, 2013.
    Zou H, Hastie T. Regularization and variable selection via the elastic net. JRSS B 2005;67(2):301-320.
    """
    design = build_design(frame, settings, "cases")
    with fit_threads():
        poisson = _refit(design, Family("poisson"), design.covariates)
        test = overdispersion_test(design.y, poisson.fittedvalues)
        negative_binomial = settings.family == "negative_binomial" or (
            settings.family == "auto" and test.p_value < settings.overdispersion_level
        )
        dispersion = _nb_dispersion(design, design.covariates, poisson.params) if negative_binomial else None
        family = Family("negative_binomial", dispersion.alpha) if dispersion else Family("poisson")
        return _fit(design, family, settings, contiguity, test, dispersion)


def fit_severity_model(
    frame: pd.DataFrame, settings: ModelSettings, contiguity: object | None = None
) -> CountModelResult:
    """Severity: `settings.severity_outcome` (deaths or severe cases) out of cases, binomial with logit link.

    Parameters
    ----------
    frame : one row per region x period with cases and the severity numerator; rows without cases are dropped
        (and counted), as they carry no information on severity.
    settings : model settings.
    contiguity : optional libpysal W over region ids for Moran's I of the residuals.
    """
    design = build_design(frame, settings, settings.severity_outcome)
    with fit_threads():
        return _fit(design, Family("binomial"), settings, contiguity, None, None)


@dataclass(frozen=True)
class _Selection:
    """The penalty path's outcome: α grid, CV, the chosen α, covariates kept and their bootstrap frequencies."""

    alphas: np.ndarray
    cv: CrossValidation
    chosen: int
    n_nonzero: np.ndarray
    selected: np.ndarray
    frequency: np.ndarray


def _fit(
    design: Design,
    family: Family,
    settings: ModelSettings,
    contiguity: object | None,
    test: OverdispersionTest | None,
    dispersion: NegativeBinomialDispersion | None,
) -> CountModelResult:
    """Selection, refit and diagnostics for a design whose family is settled."""
    folds = grouped_folds(design.groups, settings.cv_folds, settings.seed)
    selection = _select(design, family, settings, folds)
    kept = [c for c, s in zip(design.covariates, selection.selected, strict=True) if s]
    if family.name == "negative_binomial" and len(kept) < len(design.covariates):
        dispersion = _nb_dispersion(design, kept, _refit(design, Family("poisson"), kept).params)
        family = Family("negative_binomial", dispersion.alpha)
    refit = _refit(design, family, kept)
    mu = np.asarray(refit.fittedvalues) * _count_scale(design)
    pearson = (design.y - mu) / np.sqrt(family.variance(mu, design.trials))
    moran = _moran(design, pearson, contiguity, settings) if contiguity is not None else None
    alpha = float(selection.alphas[selection.chosen])
    cv_deviance = float(selection.cv.mean()[selection.chosen])
    return CountModelResult(
        outcome=design.outcome,
        family=family,
        alpha=alpha,
        coefficients=_coefficients(design, family, refit, selection, settings.penalty),
        fit=_fit_row(design, family, refit, alpha, settings, cv_deviance, test, moran),
        predictions=pd.DataFrame(
            {
                "region_id": design.region_id,
                "period": design.period,
                "outcome": design.outcome,
                "model": MODEL_NAME,
                "fitted": mu,
                "residual": pearson,
            }
        ),
        cv_path=pd.DataFrame(
            {
                "alpha_index": np.arange(len(selection.alphas)),
                "alpha": selection.alphas,
                "cv_deviance": selection.cv.mean(),
                "cv_se": selection.cv.standard_error(),
                "n_nonzero": selection.n_nonzero,
                "chosen": np.arange(len(selection.alphas)) == selection.chosen,
            }
        ),
        cv_deviance_by_fold=_by_fold(selection, design.trials is None),
        folds=pd.DataFrame({"region_id": design.region_id, "period": design.period, "fold": folds}),
        vif=variance_inflation(design.X[design.covariates]),
        dropped=dict(design.dropped),
        overdispersion=test,
        nb_dispersion=dispersion if family.name == "negative_binomial" else None,
        moran=moran,
        refit=refit,
    )


def _select(design: Design, family: Family, settings: ModelSettings, folds: np.ndarray) -> _Selection:
    """Grouped-CV over the elastic-net path and bootstrap frequencies; without penalty, CV of the plain GLM."""
    n_covariates = len(design.covariates)
    if not settings.penalty:
        alphas = np.array([0.0])
        cv = cross_validate(design, family, alphas, settings.l1_ratio, folds)
        everything = np.ones(n_covariates, dtype=bool)
        return _Selection(alphas, cv, 0, np.array([n_covariates]), everything, np.full(n_covariates, np.nan))
    null_columns = [c for c, p in zip(design.X.columns, design.penalized, strict=True) if not p]
    null_mu = _refit(design, family, null_columns).fittedvalues * _count_scale(design)
    alphas = alpha_grid(design, family, null_mu, settings.l1_ratio, settings.n_alphas, settings.alpha_min_ratio)
    cv = cross_validate(design, family, alphas, settings.l1_ratio, folds)
    chosen = choose_alpha(cv, settings.one_se_rule)
    path = fit_path(design, family, alphas, settings.l1_ratio, np.arange(len(design.y)))
    nonzero = path.coefs[:, design.penalized] != 0
    frequency = (
        selection_frequency(design, family, alphas[chosen], settings.l1_ratio, settings.bootstrap, settings.seed)
        if settings.bootstrap
        else np.full(n_covariates, np.nan)
    )
    return _Selection(alphas, cv, chosen, nonzero.sum(axis=1), nonzero[chosen], frequency)


def _count_scale(design: Design) -> np.ndarray | float:
    """Factor from statsmodels' fitted values to counts: trials for the binomial (fitted are proportions)."""
    return design.trials if design.trials is not None else 1.0


def _refit(design: Design, family: Family, columns: list[str]) -> object:
    """Unpenalized statsmodels GLM on the intercept, `columns` and the period dummies."""
    import statsmodels.api as sm

    periods = [c for c, p in zip(design.X.columns, design.penalized, strict=True) if not p and c not in columns]
    exog = design.X[[*columns, *periods]]
    exog.insert(0, "intercept", 1.0)
    if design.trials is None:
        model = sm.GLM(design.y, exog, family=family.statsmodels(), offset=design.offset)
    else:
        endog = np.column_stack([design.y, design.trials - design.y])
        model = sm.GLM(endog, exog, family=family.statsmodels())
    return model.fit(tol=REFIT_TOL, maxiter=200)


def _nb_dispersion(design: Design, columns: list[str], start: pd.Series) -> NegativeBinomialDispersion:
    """ML negative binomial dispersion for the model with `columns` (and the period dummies)."""
    periods = [c for c, p in zip(design.X.columns, design.penalized, strict=True) if not p]
    exog = np.column_stack([np.ones(len(design.y)), design.X[[*columns, *periods]].to_numpy()])
    return negative_binomial_dispersion(design.y, exog, design.offset, np.asarray(start))


def _coefficients(
    design: Design,
    family: Family,
    refit: object,
    selection: _Selection,
    penalty: bool,
) -> pd.DataFrame:
    """One row per term: per-SD estimate with CI on the ratio scale, per-unit estimate, selection columns."""
    terms = ["intercept", *design.X.columns]
    params, bse, pvalues = (refit.params.reindex(terms), refit.bse.reindex(terms), refit.pvalues.reindex(terms))
    z = stats.norm.ppf(0.975)
    sd = design.covariate_sd.reindex(terms)
    per_unit = params / sd.fillna(1.0)
    per_unit["intercept"] = params["intercept"] - float(
        (params.reindex(design.covariates).fillna(0.0) * design.covariate_mean / design.covariate_sd).sum()
    )
    is_covariate = pd.Series(terms, index=terms).isin(design.covariates)
    chosen = pd.Series(True, index=terms)
    chosen[design.covariates] = selection.selected
    freq = pd.Series(np.nan, index=terms)
    freq[design.covariates] = selection.frequency
    return pd.DataFrame(
        {
            "outcome": design.outcome,
            "family": family.name,
            "term": terms,
            "estimate": params.to_numpy(),
            "std_error": bse.to_numpy(),
            "rate_ratio": np.exp(params).to_numpy(),
            "ci_low": np.exp(params - z * bse).to_numpy(),
            "ci_high": np.exp(params + z * bse).to_numpy(),
            "p_value": pvalues.to_numpy(),
            "selected": chosen.to_numpy(),
            "selection_frequency": freq.to_numpy(),
            "covariate_sd": sd.where(is_covariate).to_numpy(),
            "estimate_per_unit": per_unit.to_numpy(),
            "inference": "post-selection refit, unpenalized" if penalty else "unpenalized",
            "n": len(design.y),
            "dropped_reasons": design.dropped_reasons,
        }
    )


def _fit_row(
    design: Design,
    family: Family,
    refit: object,
    alpha: float,
    settings: ModelSettings,
    cv_deviance: float,
    test: OverdispersionTest | None,
    moran: MoranResult | None,
) -> pd.DataFrame:
    """The one-row fit table."""
    return pd.DataFrame(
        {
            "outcome": [design.outcome],
            "family": family.name,
            "alpha": alpha,
            "l1_ratio": settings.l1_ratio if settings.penalty else np.nan,
            "n": len(design.y),
            "n_dropped": design.n_dropped,
            "dropped_reasons": design.dropped_reasons,
            "deviance": float(refit.deviance),
            "null_deviance": float(refit.null_deviance),
            "deviance_explained": 1.0 - float(refit.deviance) / float(refit.null_deviance),
            "cv_deviance": float(cv_deviance),
            "dispersion": float(refit.pearson_chi2) / float(refit.df_resid),
            "nb_alpha": family.nb_alpha if family.nb_alpha is not None else np.nan,
            "overdispersion_p": test.p_value if test else np.nan,
            "moran_i": moran.i if moran else np.nan,
            "moran_p": moran.p_value if moran else np.nan,
        }
    )


def _by_fold(selection: _Selection, counts: bool) -> pd.DataFrame:
    """Held-out deviance per α and fold, long form; Poisson deviance too for count models."""
    cv = selection.cv
    n_alphas, n_folds = cv.deviance.shape
    return pd.DataFrame(
        {
            "alpha_index": np.repeat(np.arange(n_alphas), n_folds),
            "alpha": np.repeat(selection.alphas, n_folds),
            "fold": np.tile(np.arange(n_folds), n_alphas),
            "n": np.tile(cv.n, n_alphas).astype(np.int64),
            "deviance": cv.deviance.ravel(),
            "poisson_deviance": cv.poisson_deviance.ravel() if counts else np.nan,
        }
    )


def _moran(design: Design, pearson: np.ndarray, contiguity: object, settings: ModelSettings) -> MoranResult | None:
    """Moran's I of the mean Pearson residual per region over the periods fitted; None (NULL in glm_fit) when fewer
    than 3 regions fitted have a neighbour among them."""
    by_region = pd.Series(pearson).groupby(design.region_id, sort=True).mean()
    if connected_regions(by_region, contiguity) < MIN_MORAN_REGIONS:
        return None
    return moran_permutation(by_region, contiguity, settings.moran_permutations, settings.seed)
