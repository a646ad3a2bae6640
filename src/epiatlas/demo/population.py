"""Census populations by municipality, year, 5-year age group and sex (a Mexican-like pyramid)."""

from __future__ import annotations

import numpy as np

from epiatlas.demo.spec import DemoSpec

AGE_GROUPS: list[str] = [f"{lo}-{lo + 4}" for lo in range(0, 85, 5)] + ["85+"]
AGE_LOWER = np.array([*range(0, 90, 5)])
AGE_MID = np.array([lo + 2.5 for lo in range(0, 85, 5)] + [89.0])
SEXES: list[str] = ["H", "M"]  # hombre, mujer: the codes used in the census and records files
REFERENCE_YEAR = 2020

# Share of the national population per age group (Mexico 2020, both sexes).
PYRAMID_2020 = np.array([8.6, 8.9, 8.9, 8.8, 8.5, 8.0, 7.5, 7.2, 6.8, 6.3, 5.6, 4.5, 3.6, 2.8, 2.0, 1.4, 0.9, 0.7])
# Share of males within each age group.
MALE_SHARE = np.array(
    [0.511, 0.510, 0.509, 0.505, 0.495, 0.485, 0.480, 0.478, 0.477,
     0.476, 0.474, 0.472, 0.470, 0.466, 0.460, 0.450, 0.430, 0.410]
)  # fmt: skip
MUNICIPALITY_SIZE_SIGMA = 1.3
MIN_MUNICIPALITY_POPULATION = 400.0
AGEING_PER_YEAR = 0.012


def municipality_sizes(state_index: np.ndarray, state_shares: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Reference-year population per municipality: log-normal within each state, summing to the state total."""
    rng = spec.rng("population.sizes")
    raw = rng.lognormal(0.0, MUNICIPALITY_SIZE_SIGMA, size=len(state_index))
    state_totals = np.bincount(state_index, weights=raw)
    sizes = raw / state_totals[state_index] * state_shares[state_index] * spec.population_2020
    return np.maximum(sizes, MIN_MUNICIPALITY_POPULATION)


def age_sex_shares(youth_tilt: np.ndarray) -> np.ndarray:
    """Age × sex shares per region, shape (r, a, s); a positive tilt gives a younger population."""
    weights = PYRAMID_2020[None, :] * np.exp(youth_tilt[:, None] * (35.0 - AGE_MID[None, :]) / 30.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.stack([weights * MALE_SHARE, weights * (1.0 - MALE_SHARE)], axis=-1)


def census_counts(sizes: np.ndarray, growth: np.ndarray, youth_tilt: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Integer population, shape (r, t, a, s): regional growth and slow ageing around the reference year."""
    offsets = np.array(spec.years) - REFERENCE_YEAR
    totals = sizes[:, None] * (1.0 + growth[:, None]) ** offsets[None, :]
    tilts = youth_tilt[:, None] - AGEING_PER_YEAR * offsets[None, :]
    shares = age_sex_shares(tilts.ravel()).reshape(len(sizes), len(offsets), len(AGE_GROUPS), len(SEXES))
    return np.rint(totals[:, :, None, None] * shares).astype(np.int64)
