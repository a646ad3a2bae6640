"""Interval methods against statsmodels and scipy, and SHR interval coverage in a simulation with known truth."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.rates import confint_poisson

from epiatlas.config import OutcomesConfig
from epiatlas.outcomes import region_period_outcomes
from epiatlas.outcomes.intervals import fay_feuer_ci, poisson_exact_ci

AGE_GROUPS = ["0-44", "45-64", "65+"]
BASE_RATES = np.array([0.0005, 0.003, 0.012])  # per person-year, by age group


@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_garwood_matches_statsmodels_exact(level):
    counts = np.array([0, 1, 2, 5, 10, 37, 250, 10_000])
    lower, upper = poisson_exact_ci(counts, level)
    for count, lo, hi in zip(counts, lower, upper):
        ref_lo, ref_hi = confint_poisson(int(count), 1.0, method="exact-c", alpha=1 - level)
        assert lo == pytest.approx(ref_lo if count else 0.0, rel=1e-9, abs=1e-12)
        assert hi == pytest.approx(ref_hi, rel=1e-9)


def test_garwood_matches_gamma_form():
    counts = np.arange(1, 60)
    lower, upper = poisson_exact_ci(counts, 0.95)
    np.testing.assert_allclose(lower, stats.gamma.ppf(0.025, counts))
    np.testing.assert_allclose(upper, stats.gamma.ppf(0.975, counts + 1))


def test_missing_counts_stay_missing():
    lower, upper = poisson_exact_ci(np.array([np.nan, 3.0]), 0.95)
    assert np.isnan(lower[0]) and np.isnan(upper[0]) and lower[1] > 0


def test_fay_feuer_reduces_to_garwood_for_one_stratum():
    # One stratum with weight w/n: rate = w c / n, var = w^2 c / n^2, max weight w / n -> Garwood scaled by w / n.
    c, scale = np.array([0.0, 3.0, 40.0]), 1 / 5000
    lower, upper = fay_feuer_ci(c * scale, c * scale**2, np.full(3, scale), 0.95)
    exact_lower, exact_upper = poisson_exact_ci(c, 0.95)
    np.testing.assert_allclose(lower, exact_lower * scale, rtol=1e-9)
    np.testing.assert_allclose(upper, exact_upper * scale, rtol=1e-9)


def simulated_connection(n_regions: int, seed: int) -> tuple[duckdb.DuckDBPyConnection, pd.Series]:
    """Populations and Poisson cases with log-normal relative risks; returns the connection and true SHRs."""
    rng = np.random.default_rng(seed)
    regions = [f"R{i:03d}" for i in range(n_regions)]
    pop = rng.integers(2_000, 60_000, size=(n_regions, len(AGE_GROUPS)))
    rr = np.exp(rng.normal(0.0, 0.3, n_regions))
    mu = rr[:, None] * pop * BASE_RATES  # expected count per region x age group
    cases = rng.poisson(mu)
    # Truth on the internal standard: the mean count over the expected count at the all-region true rates.
    true_rates = mu.sum(axis=0) / pop.sum(axis=0)
    truth = pd.Series(mu.sum(axis=1) / (pop * true_rates).sum(axis=1), index=regions)
    census = pd.DataFrame(
        [(r, 2020, g, "F", int(pop[i, j])) for i, r in enumerate(regions) for j, g in enumerate(AGE_GROUPS)],
        columns=["region_id", "year", "age_group", "sex", "population"],
    )
    region_idx, age_idx = np.nonzero(cases)
    counts = cases[region_idx, age_idx]
    ages = np.repeat(np.array([20, 50, 70])[age_idx], counts)
    hosp = pd.DataFrame(
        {
            "record_id": np.arange(counts.sum()).astype(str),
            "region_id": np.repeat(np.array(regions)[region_idx], counts),
            "age": ages,
        }
    )
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest($r) AS region_id", {"r": regions})
    con.register("census_df", census)
    con.execute("CREATE TABLE census AS SELECT * REPLACE (year::INTEGER AS year) FROM census_df")
    con.register("hosp_df", hosp)
    con.execute(
        """CREATE TABLE hospitalizations AS SELECT record_id, DATE '2020-06-01' AS admission_date,
           DATE '2020-06-03' AS discharge_date, region_id, age::INTEGER AS age, 'F' AS sex, 'E119' AS icd10,
           'alive' AS discharge_status, NULL::BOOLEAN AS icu FROM hosp_df"""
    )
    return con, truth


def test_shr_interval_covers_true_relative_risk_at_nominal_rate():
    con, truth = simulated_connection(n_regions=300, seed=20260101)
    out = region_period_outcomes(con, OutcomesConfig(), [2020]).set_index("region_id")
    covered = (out["shr_lower"] <= truth) & (truth <= out["shr_upper"])
    assert 0.90 <= covered.mean() <= 0.99, covered.mean()
    # Point estimates track the truth closely with these sizes.
    assert np.corrcoef(out["shr"].astype(float), truth)[0, 1] > 0.8


def test_simulation_expected_sums_to_observed():
    con, _ = simulated_connection(n_regions=300, seed=7)
    out = region_period_outcomes(con, OutcomesConfig(), [2020])
    assert out["expected_cases"].sum() == pytest.approx(out["cases"].sum())
