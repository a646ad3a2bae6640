"""The three GLM families of the count models, with the same meaning in glum, statsmodels and numpy.

Every mean here is on the count scale: for the binomial, `mu = trials * p`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, xlogy

FamilyName = Literal["poisson", "negative_binomial", "binomial"]


@dataclass(frozen=True)
class Family:
    """A family with its fixed dispersion: `nb_alpha` in Var(y) = mu + nb_alpha * mu**2 for the negative binomial."""

    name: FamilyName
    nb_alpha: float | None = None

    def mean(self, eta: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        """Expected counts from the linear predictor (offset included)."""
        if self.name == "binomial":
            return np.asarray(trials) * expit(eta)
        return np.exp(eta)

    def variance(self, mu: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        """Variance of the count under the family."""
        if self.name == "binomial":
            return mu * (1.0 - mu / np.asarray(trials))
        if self.name == "negative_binomial":
            return mu + float(self.nb_alpha) * mu**2
        return mu

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        """Deviance contribution of each observation (twice the log-likelihood gap to the saturated model).

        References
        ----------
        McCullagh P, Nelder JA. Generalized Linear Models, 2nd ed. Chapman & Hall, 1989, Table 2.1.
        """
        if self.name == "binomial":
            n = np.asarray(trials, dtype=float)
            return 2.0 * (xlogy(y, y / mu) + xlogy(n - y, (n - y) / (n - mu)))
        if self.name == "negative_binomial":
            a = float(self.nb_alpha)
            return 2.0 * (xlogy(y, y / mu) - (y + 1.0 / a) * np.log((1.0 + a * y) / (1.0 + a * mu)))
        return 2.0 * (xlogy(y, y / mu) - (y - mu))

    def score_residual(self, y: np.ndarray, mu: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        """Derivative of the log-likelihood with respect to the linear predictor (canonical-like log/logit links)."""
        if self.name == "negative_binomial":
            return (y - mu) / (1.0 + float(self.nb_alpha) * mu)
        return y - mu

    def glum(self) -> object:
        """The glum distribution object."""
        from glum import BinomialDistribution, NegativeBinomialDistribution, PoissonDistribution

        if self.name == "binomial":
            return BinomialDistribution()
        if self.name == "negative_binomial":
            return NegativeBinomialDistribution(theta=float(self.nb_alpha))
        return PoissonDistribution()

    def statsmodels(self) -> object:
        """The statsmodels GLM family object."""
        import statsmodels.api as sm

        if self.name == "binomial":
            return sm.families.Binomial()
        if self.name == "negative_binomial":
            return sm.families.NegativeBinomial(alpha=float(self.nb_alpha))
        return sm.families.Poisson()
