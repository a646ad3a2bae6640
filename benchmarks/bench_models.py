"""Benchmark: the whole `models` group on 2,500 regions x 10 periods x 30 covariates, per step.

Indices (factor analysis with parallel analysis on 12 indicators from 3 latent factors), the case and the
severity GLM (elastic net with grouped CV and bootstrap selection, statsmodels refit), LightGBM with CV, exact
SHAP and PD/ICE, then the figures. In the same run, the case GLM's elastic-net CV path is timed with
statsmodels' `fit_regularized` on the same design, grid and folds (see bench_glm.py) and the ratio printed.

    .venv/bin/python benchmarks/bench_models.py [--regions 2500] [--periods 10] [--skip-statsmodels]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
from bench_glm import L1_RATIO, statsmodels_cv, statsmodels_path

from epiatlas.indices import IndicesSettings, fit_indices
from epiatlas.indices.published import index_tables
from epiatlas.models.analysis import fit_burden_models
from epiatlas.models.config import ModelsConfig
from epiatlas.models.design import build_design
from epiatlas.models.families import Family
from epiatlas.models.frame import model_frame
from epiatlas.models.path import cross_validate, fit_path
from epiatlas.models.threads import fit_threads

N_INDICATORS, N_FACTORS = 12, 3


def synthetic(n_regions: int, n_periods: int, n_other: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Indicators (region x period) and outcomes with `n_other` further covariates, 6 of them with effects."""
    rng = np.random.default_rng(seed)
    n = n_regions * n_periods
    region = np.repeat([f"R{r:05d}" for r in range(n_regions)], n_periods)
    period = np.tile(np.arange(2013, 2013 + n_periods), n_regions)
    factors = np.repeat(rng.normal(size=(n_regions, N_FACTORS)), n_periods, axis=0) + 0.1 * rng.normal(size=(n, N_FACTORS))
    loadings = np.zeros((N_INDICATORS, N_FACTORS))
    for j in range(N_INDICATORS):
        loadings[j, j % N_FACTORS] = rng.uniform(0.6, 0.9)
    indicators = pd.DataFrame(factors @ loadings.T + 0.5 * rng.normal(size=(n, N_INDICATORS)),
                              columns=[f"ind{j:02d}" for j in range(N_INDICATORS)])  # fmt: skip
    indicators.insert(0, "region_id", region)
    indicators.insert(1, "period", period)
    other = rng.normal(size=(n, n_other))
    beta = np.zeros(n_other)
    beta[:6] = [0.15, -0.1, 0.08, 0.05, -0.05, 0.04]
    expected = rng.uniform(5.0, 80.0, n)
    cases = rng.poisson(expected * np.exp(factors @ np.array([0.2, 0.1, 0.05]) + other @ beta))
    outcomes = pd.DataFrame(
        {"region_id": region, "period": period, "cases": cases, "deaths": rng.binomial(cases, 0.05),
         "severe_cases": rng.binomial(cases, 0.2), "population": 100_000, "expected_cases": expected}
    )  # fmt: skip
    covariates = pd.DataFrame(other, columns=[f"x{j:02d}" for j in range(n_other)])
    covariates.insert(0, "region_id", region)
    covariates.insert(1, "period", period)
    return indicators, outcomes.merge(covariates, on=["region_id", "period"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=2500)
    parser.add_argument("--periods", type=int, default=10)
    parser.add_argument("--skip-statsmodels", action="store_true")
    args = parser.parse_args()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    indicators, outcomes = synthetic(args.regions, args.periods, n_other=30 - N_FACTORS)
    timings["simulate"] = time.perf_counter() - start

    start = time.perf_counter()
    indices = fit_indices(indicators, IndicesSettings(indicators=[c for c in indicators.columns if c.startswith("ind")]))
    scores = index_tables(indices, IndicesSettings(indicators=[c for c in indicators.columns if c.startswith("ind")]))
    timings["indices"] = time.perf_counter() - start

    regions = pd.DataFrame({"region_id": outcomes["region_id"].unique(), "parent_id": None})
    covariates = outcomes[["region_id", "period", *[c for c in outcomes.columns if c.startswith("x")]]]
    frame = model_frame(outcomes, regions, None, scores["socioeconomic_indices"], covariates)
    config = ModelsConfig()
    print(f"{len(frame)} region-periods, covariates: {len(frame.columns) - 9} (3 indices + 27 others + composite)")
    start = time.perf_counter()
    models = fit_burden_models(frame, config, contiguity=None, published=None)
    timings["models_total"] = time.perf_counter() - start
    timings.update({f"  {k}": v for k, v in models.timings.items()})
    total = timings["indices"] + timings["models_total"]
    for step, seconds in timings.items():
        print(f"{step:<24}{seconds:8.2f} s")
    print(f"{'indices + models':<24}{total:8.2f} s  (target < 60 s: {'met' if total < 60 else 'NOT met'})")
    fit = models.tables["glm_fit"].set_index("outcome")
    coefficients = models.tables["glm_coefficients"]
    kept = int(coefficients.loc[coefficients["outcome"] == "cases", "selected"].sum())
    print(f"case model: {fit.loc['cases', 'family']}, alpha {fit.loc['cases', 'alpha']:.4g}, {kept} terms kept")

    if args.skip_statsmodels:
        return
    settings = config.glm_settings(models.covariates)
    design = build_design(frame, settings, "cases")
    folds = models.cases.folds["fold"].to_numpy()
    with fit_threads():
        alphas = models.cases.cv_path["alpha"].to_numpy()
        start = time.perf_counter()
        cross_validate(design, Family("poisson"), alphas, L1_RATIO, folds)
        fit_path(design, Family("poisson"), alphas, L1_RATIO, np.arange(len(design.y)))
        glum_s = time.perf_counter() - start
        start = time.perf_counter()
        statsmodels_cv(design, alphas, folds)
        statsmodels_path(design, alphas, np.arange(len(design.y)))
        sm_s = time.perf_counter() - start
    print(f"elastic-net CV path, {len(alphas)} alphas x {int(folds.max()) + 1} folds, same design and folds:")
    print(f"  glum (epiatlas)             {glum_s:8.2f} s")
    print(f"  statsmodels fit_regularized {sm_s:8.2f} s")
    print(f"  ratio statsmodels / glum    {sm_s / glum_s:8.1f}x")


if __name__ == "__main__":
    main()
