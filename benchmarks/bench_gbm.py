"""Benchmark: LightGBM Poisson GBM with grouped-CV early stopping, TreeSHAP and PDP/ICE on a simulated model frame.

Default size is the issue's target: 2,500 regions x 10 periods x 30 covariates (25,000 rows), six of them with
planted log-linear effects. Prints the wall time of each step (CV + final fit, SHAP by LightGBM's pred_contrib
and by shap's TreeExplainer on a tenth of the rows, the gbm_shap / region_drivers tables, partial dependence, the two model figures)
and what was fit (rounds, CV deviance against the constant-rate model, top features by mean |SHAP|).

    .venv/bin/python benchmarks/bench_gbm.py [--regions 2500] [--periods 10] [--covariates 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd

from epiatlas.models.explain import mean_abs_shap, partial_dependence, region_drivers, shap_table, tree_shap
from epiatlas.models.gbm import GbmSettings, fit_gbm
from epiatlas.models.plots import pdp_grid, shap_beeswarm

T = TypeVar("T")
PLANTED = {"x00": 0.30, "x01": -0.25, "x02": 0.20, "x03": -0.15, "x04": 0.10, "x05": 0.05}


def simulate(regions: int, periods: int, covariates: int, seed: int = 0) -> pd.DataFrame:
    """Correlated standard-normal covariates (region level plus period noise), Poisson counts with offset."""
    rng = np.random.default_rng(seed)
    n = regions * periods
    frame = pd.DataFrame(
        {
            "region_id": np.repeat([f"R{i:05d}" for i in range(regions)], periods),
            "period": np.tile(2015 + np.arange(periods), regions),
        }
    )
    shared = rng.normal(size=n)
    for j in range(covariates):
        level = np.repeat(rng.normal(size=regions), periods)
        frame[f"x{j:02d}"] = 0.8 * level + 0.3 * shared + 0.5 * rng.normal(size=n)
    frame["expected_cases"] = rng.gamma(2.0, 40.0, n) + 1.0
    eta = sum(beta * frame[name] for name, beta in PLANTED.items())
    frame["cases"] = rng.poisson(frame["expected_cases"] * np.exp(eta))
    return frame


def timed(label: str, step: Callable[[], T], times: dict[str, float]) -> T:
    """Run `step`, record its wall time and print wall and CPU seconds (CPU tells load from other work apart)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = step()
    times[label] = time.perf_counter() - start
    print(f"  {label:<34} {times[label]:8.2f} s wall {time.process_time() - cpu:8.2f} s CPU", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=2500)
    parser.add_argument("--periods", type=int, default=10)
    parser.add_argument("--covariates", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=GbmSettings().learning_rate)
    args = parser.parse_args()

    frame = simulate(args.regions, args.periods, args.covariates)
    covariates = [f"x{j:02d}" for j in range(args.covariates)]
    settings = GbmSettings(num_threads=args.threads, learning_rate=args.learning_rate)
    print(f"{len(frame):,} rows ({args.regions} regions x {args.periods} periods), {len(covariates)} covariates, "
          f"{args.threads} thread(s); settings {settings.model_dump()}")  # fmt: skip
    times: dict[str, float] = {}
    result = timed("fit (5-fold CV + final)", lambda: fit_gbm(frame, covariates, settings=settings), times)
    shap = timed("SHAP (LightGBM pred_contrib)", lambda: tree_shap(result), times)
    sample = frame.iloc[: len(frame) // 10]
    timed("SHAP (shap TreeExplainer, 10% rows)", lambda: tree_shap(result, sample, method="tree_explainer"), times)
    table = timed("gbm_shap + region_drivers tables", lambda: (shap_table(shap), region_drivers(shap))[0], times)
    pdp = timed("partial dependence + ICE (all)", lambda: partial_dependence(result), times)
    timed("figures (beeswarm, PDP grid)", lambda: (shap_beeswarm(table), pdp_grid(pdp)), times)
    core = times["fit (5-fold CV + final)"] + times["SHAP (LightGBM pred_contrib)"]
    core += times["gbm_shap + region_drivers tables"] + times["partial dependence + ICE (all)"]
    print(f"  {'fit + SHAP + PDP (pipeline path)':<34} {core:8.2f} s")

    null = result.cv_table["null_deviance"].sum() / result.cv_table["n"].sum()
    print(f"rounds chosen by CV: {result.n_rounds} (path evaluated to {len(result.cv_path)})")
    print(f"CV Poisson deviance per row: GBM {result.cv_deviance:.4f}, constant rate {null:.4f}")
    top = mean_abs_shap(shap).head(8)
    print("mean |SHAP|: " + ", ".join(f"{f} {v:.3f}" for f, v in zip(top["feature"], top["mean_abs_shap"])))
    print(f"planted effects (log rate ratio per SD): {PLANTED}")


if __name__ == "__main__":
    main()
