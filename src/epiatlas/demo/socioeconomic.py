"""Latent socioeconomic factors per municipality-year and the percent indicators they generate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from epiatlas.demo.spec import DemoSpec

FACTORS: list[str] = ["marginalization", "infrastructure_deficit", "health_access_deficit"]
FACTOR_TRENDS = np.array([-0.03, -0.04, -0.02])  # SD per year: conditions improve slowly
FACTOR_DRIFT_SD = 0.04
SMOOTHING_KM = 150.0
UNIQUENESS_SD = 0.35
YEARLY_NOISE_SD = 0.10


@dataclass(frozen=True)
class Indicator:
    """One percent indicator: logit(share) = intercept + scale · (loadings · F + noise)."""

    file_column: str
    canonical: str
    intercept: float
    scale: float
    loadings: tuple[float, float, float]


INDICATORS: list[Indicator] = [
    Indicator("analf", "illiteracy", -3.0, 0.9, (0.85, 0.15, 0.0)),
    Indicator("sprim", "no_primary_school", -1.7, 0.6, (0.85, 0.0, 0.15)),
    Indicator("ovsde", "no_drainage_toilet", -3.4, 1.0, (0.3, 0.8, 0.0)),
    Indicator("ovsee", "no_electricity", -4.2, 0.9, (0.25, 0.75, 0.0)),
    Indicator("ovsae", "no_piped_water", -2.8, 0.9, (0.2, 0.85, 0.0)),
    Indicator("vhac", "overcrowding", -1.1, 0.5, (0.6, 0.3, 0.0)),
    Indicator("ovpt", "dirt_floor", -3.1, 1.0, (0.7, 0.4, 0.0)),
    Indicator("pl5000", "small_localities", 0.2, 1.6, (0.55, 0.55, 0.0)),
    Indicator("po2sm", "low_income", 0.0, 0.7, (0.7, 0.0, 0.35)),
    Indicator("sin_salud", "no_health_insurance", -1.1, 0.6, (0.1, 0.0, 0.9)),
    Indicator("sin_internet", "no_internet", -0.2, 0.8, (0.5, 0.2, 0.4)),
    Indicator("informal", "informal_employment", 0.3, 0.6, (0.3, 0.0, 0.8)),
]


def standardize(x: np.ndarray) -> np.ndarray:
    """Mean 0, SD 1."""
    return (x - x.mean()) / x.std()


def smooth_noise(coords_km: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spatially correlated unit-variance noise: white noise under a Gaussian kernel."""
    d2 = ((coords_km[:, None, :] - coords_km[None, :, :]) ** 2).sum(axis=-1)
    kernel = np.exp(-0.5 * d2 / SMOOTHING_KM**2)
    return standardize(kernel @ rng.standard_normal(len(coords_km)))


def baseline_factors(
    state_index: np.ndarray, state_gdp: np.ndarray, log_size: np.ndarray, coords_km: np.ndarray, spec: DemoSpec
) -> np.ndarray:
    """First-year factor scores (r, k), each standardised: poor states, small places and neighbours co-vary."""
    rng = spec.rng("socioeconomic.factors")
    n, n_states = len(state_index), len(state_gdp)
    poor_state = standardize(-np.log(state_gdp))[state_index]
    small_place = -standardize(log_size)
    marginalization = standardize(
        0.6 * poor_state + 0.45 * small_place + 0.5 * smooth_noise(coords_km, rng) + 0.4 * rng.standard_normal(n)
    )
    infrastructure = standardize(
        0.4 * marginalization
        + 0.5 * rng.standard_normal(n_states)[state_index]
        + 0.5 * smooth_noise(coords_km, rng)
        + 0.5 * rng.standard_normal(n)
    )
    health_access = standardize(
        0.3 * marginalization
        + 0.4 * rng.standard_normal(n_states)[state_index]
        + 0.3 * smooth_noise(coords_km, rng)
        + 0.6 * rng.standard_normal(n)
    )
    return np.stack([marginalization, infrastructure, health_access], axis=1)


def factor_paths(baseline: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Factor scores (r, t, k): baseline plus a common trend and a slow regional random walk."""
    rng = spec.rng("socioeconomic.drift")
    steps = rng.normal(0.0, FACTOR_DRIFT_SD, size=(baseline.shape[0], spec.n_years, baseline.shape[1]))
    steps[:, 0, :] = 0.0
    years = np.arange(spec.n_years)[None, :, None]
    return baseline[:, None, :] + FACTOR_TRENDS[None, None, :] * years + np.cumsum(steps, axis=1)


def indicator_percents(factors: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Indicators in percent (r, t, j), strictly inside (0, 100), from factors through a logistic link."""
    rng = spec.rng("socioeconomic.indicators")
    n_r, n_t, _ = factors.shape
    loadings = np.array([ind.loadings for ind in INDICATORS])  # (j, k)
    intercept = np.array([ind.intercept for ind in INDICATORS])
    scale = np.array([ind.scale for ind in INDICATORS])
    uniqueness = rng.normal(0.0, UNIQUENESS_SD, size=(n_r, 1, len(INDICATORS)))
    yearly = rng.normal(0.0, YEARLY_NOISE_SD, size=(n_r, n_t, len(INDICATORS)))
    latent = factors @ loadings.T + uniqueness + yearly
    return np.clip(100.0 * expit(intercept + scale * latent), 0.01, 99.99)
