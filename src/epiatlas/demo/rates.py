"""Expected admissions (Poisson means) per municipality, year, age group and sex.

Diabetes: log λ = log base[a,s] + Σ_k β_k F_k[r,t] + Σ_p γ_p (x_p[r,t] − ref_p)/scale_p + δ (t − t0) + u_r.
Other diagnoses: their own age/sex curve with a common trend, independent of factors and pollution.
"""

from __future__ import annotations

import numpy as np

from epiatlas.demo.diagnoses import OTHER_DIAGNOSES, OTHER_TREND_PER_YEAR
from epiatlas.demo.pollution import POLLUTANTS
from epiatlas.demo.socioeconomic import FACTORS
from epiatlas.demo.spec import DemoSpec

# Yearly diabetes admissions per 100k women by age group; men have MALE_RATIO times these.
DIABETES_FEMALE_PER_100K = np.array(
    [4, 7, 11, 14, 15, 20, 28, 45, 70, 105, 147, 190, 230, 265, 295, 315, 320, 310], dtype=float
)
DIABETES_MALE_RATIO = 1.1
FACTOR_EFFECTS = dict(zip(FACTORS, [0.25, 0.10, 0.15], strict=True))  # per SD of the factor
# Per pollutant: (coefficient per `scale` units, reference level, scale), file units.
POLLUTANT_EFFECTS: dict[str, tuple[float, float, float]] = {
    "PM25": (0.08, 15.0, 10.0),
    "PM10": (0.0, 40.0, 10.0),
    "O3": (0.0, 80.0, 10.0),
    "NO2": (0.0, 20.0, 10.0),
    "SO2": (0.0, 10.0, 10.0),
    "CO": (0.0, 1.0, 1.0),
}
TREND_PER_YEAR = 0.02
REGION_EFFECT_SD = 0.10


def diabetes_base_rates() -> np.ndarray:
    """Baseline yearly diabetes admissions per person, shape (a, s), sexes ordered H, M."""
    return np.stack([DIABETES_MALE_RATIO * DIABETES_FEMALE_PER_100K, DIABETES_FEMALE_PER_100K], axis=-1) / 1e5


def region_effects(n_regions: int, spec: DemoSpec) -> np.ndarray:
    """Small unexplained municipal effects u_r on the log diabetes rate."""
    return spec.rng("rates.region_effects").normal(0.0, REGION_EFFECT_SD, n_regions)


def diabetes_log_relative_rate(
    factors: np.ndarray, exposure: np.ndarray, region_effect: np.ndarray, spec: DemoSpec
) -> np.ndarray:
    """The non-demographic part of log λ, shape (r, t): factors, pollution, trend and u_r."""
    beta = np.array([FACTOR_EFFECTS[f] for f in FACTORS])
    coef, ref, scale = (np.array([POLLUTANT_EFFECTS[p.canonical][i] for p in POLLUTANTS]) for i in range(3))
    pollution = ((exposure - ref) / scale) @ coef
    trend = TREND_PER_YEAR * np.arange(spec.n_years)[None, :]
    return factors @ beta + pollution + trend + region_effect[:, None]


def diabetes_means(population: np.ndarray, log_relative_rate: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Poisson means μ of diabetes admissions, shape (r, t, a, s)."""
    rate = diabetes_base_rates()[None, None] * np.exp(log_relative_rate)[:, :, None, None]
    return spec.records_scale * population * rate


def other_means(population: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Poisson means of the other diagnoses, shape (d, r, t, a, s)."""
    trend = np.exp(OTHER_TREND_PER_YEAR * np.arange(spec.n_years))[None, :, None, None]
    return np.stack([spec.records_scale * population * trend * d.rates()[None, None] for d in OTHER_DIAGNOSES])
