"""The latent state of the demo: geography, population, factors, exposure and the Poisson means."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from epiatlas.demo import geography, pollution, population, rates, socioeconomic
from epiatlas.demo.spec import DemoSpec

GROWTH_MEAN = 0.011
GROWTH_PER_MARGINALIZATION_SD = 0.004
GROWTH_SD = 0.004
YOUTH_PER_MARGINALIZATION_SD = 0.3
YOUTH_SD = 0.1


@dataclass(frozen=True)
class World:
    """Everything drawn before sampling records and readings; arrays indexed (region, year, ...)."""

    spec: DemoSpec
    municipalities: gpd.GeoDataFrame
    sizes: np.ndarray  # (r,) reference-year population
    population: np.ndarray  # (r, t, a, s)
    factors: np.ndarray  # (r, t, k)
    field: pollution.PollutionField
    exposure: np.ndarray  # (r, t, p) annual mean at the centroid
    region_effect: np.ndarray  # (r,)
    diabetes_mu: np.ndarray  # (r, t, a, s)
    other_mu: np.ndarray  # (d, r, t, a, s)

    def expected_records(self) -> float:
        """Expected number of hospitalization records over all years."""
        return float(self.diabetes_mu.sum() + self.other_mu.sum())


def demography(factors0: np.ndarray, n: int, spec: DemoSpec) -> tuple[np.ndarray, np.ndarray]:
    """Regional growth rates and youth tilts: marginalised places grow faster and are younger."""
    rng = spec.rng("population.demography")
    marginalization = factors0[:, 0]
    growth = GROWTH_MEAN + GROWTH_PER_MARGINALIZATION_SD * marginalization + rng.normal(0.0, GROWTH_SD, n)
    youth = YOUTH_PER_MARGINALIZATION_SD * marginalization + rng.normal(0.0, YOUTH_SD, n)
    return growth, youth


def build_world(spec: DemoSpec) -> World:
    """Draw the latent state; cheap next to sampling records, so tests can inspect the full demo's means."""
    states = geography.load_states()
    municipalities = geography.build_municipalities(states, spec)
    state_index = np.searchsorted(states["CVE_ENT"].to_numpy(), municipalities["CVE_ENT"].to_numpy())
    region_km = pollution.to_km(geography.centroids(municipalities))
    sizes = population.municipality_sizes(state_index, states["population_share"].to_numpy(), spec)
    factors0 = socioeconomic.baseline_factors(
        state_index, states["gdp_per_capita_2000"].to_numpy(), np.log(sizes), region_km, spec
    )
    factors = socioeconomic.factor_paths(factors0, spec)
    growth, youth = demography(factors0, len(sizes), spec)
    pop = population.census_counts(sizes, growth, youth, spec)
    field = pollution.build_field(region_km, sizes, spec)
    exposure = field.annual_means(region_km)
    region_effect = rates.region_effects(len(sizes), spec)
    log_rr = rates.diabetes_log_relative_rate(factors, exposure, region_effect, spec)
    return World(
        spec=spec,
        municipalities=municipalities,
        sizes=sizes,
        population=pop,
        factors=factors,
        field=field,
        exposure=exposure,
        region_effect=region_effect,
        diabetes_mu=rates.diabetes_means(pop, log_rr, spec),
        other_mu=rates.other_means(pop, spec),
    )
