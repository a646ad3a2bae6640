"""Overdispersion of counts: the Cameron-Trivedi test and the maximum-likelihood negative binomial dispersion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from epiatlas.errors import ModelError


@dataclass(frozen=True)
class OverdispersionTest:
    """Auxiliary-regression estimate of alpha in Var(y) = mu + alpha mu^2, its t statistic and one-sided p-value."""

    alpha: float
    statistic: float
    p_value: float


@dataclass(frozen=True)
class NegativeBinomialDispersion:
    """ML estimate of the NB2 dispersion alpha with its Wald 95% interval."""

    alpha: float
    ci_low: float
    ci_high: float


def overdispersion_test(y: np.ndarray, mu: np.ndarray) -> OverdispersionTest:
    """Regress ((y - mu)^2 - y) / mu on mu without intercept; alpha > 0 means overdispersion (one-sided t-test).

    Parameters
    ----------
    y : observed counts.
    mu : fitted means of a Poisson GLM of `y`.

    References
    ----------
    Cameron AC, Trivedi PK. Regression-based tests for overdispersion in the Poisson model.
    Journal of Econometrics 1990;46(3):347-364.
    """
    z = ((y - mu) ** 2 - y) / mu
    alpha = float(mu @ z / (mu @ mu))
    resid = z - alpha * mu
    df = len(y) - 1
    se = float(np.sqrt(resid @ resid / df / (mu @ mu)))
    statistic = alpha / se
    return OverdispersionTest(alpha=alpha, statistic=statistic, p_value=float(stats.t.sf(statistic, df)))


def negative_binomial_dispersion(
    y: np.ndarray, design: np.ndarray, offset: np.ndarray, start: np.ndarray
) -> NegativeBinomialDispersion:
    """Maximum-likelihood NB2 fit (coefficients and alpha jointly); returns alpha, never a library default.

    Parameters
    ----------
    y : observed counts.
    design : regressors including the intercept column.
    offset : log offset per row.
    start : starting coefficients (a Poisson fit's); alpha starts at the moment estimate.

    References
    ----------
    Cameron AC, Trivedi PK. Regression Analysis of Count Data, 2nd ed. Cambridge University Press, 2013, ch. 3.3.
    """
    import statsmodels.api as sm

    model = sm.NegativeBinomial(y, design, loglike_method="nb2", offset=offset)
    mu = np.exp(design @ start + offset)
    alpha0 = max(overdispersion_test(y, mu).alpha, 1e-3)
    for method in ("newton", "bfgs"):
        result = model.fit(start_params=np.append(start, alpha0), method=method, maxiter=500, disp=0)
        if result.mle_retvals.get("converged", False):
            alpha = float(result.params[-1])
            low, high = result.conf_int()[-1]
            return NegativeBinomialDispersion(alpha=alpha, ci_low=float(low), ci_high=float(high))
    raise ModelError(
        "the negative binomial dispersion did not converge (newton and bfgs); set models.family to 'poisson' "
        "or check the covariates for extreme values"
    )
