"""Benchmark: the same elastic-net grouped-CV Poisson fit with glum (epiatlas) and statsmodels' fit_regularized.

Synthetic data: 2,500 regions x 10 periods x 30 covariates (5 with effects), log(expected) offset, period
dummies unpenalized. Both fit the same α grid on the same folds (warm starts along the path); the script prints
wall and CPU times, their ratios and how far each solution is from the KKT optimality conditions.
On a shared machine the CPU times are the steadier comparison.

    .venv/bin/python benchmarks/bench_glm.py [--n-alphas 10] [--regions 2500]
"""

from __future__ import annotations

import argparse
import time

import glum  # noqa: F401  (imported here so that neither timing includes an import)
import numpy as np
import pandas as pd
import statsmodels.api as sm

from epiatlas.models.design import Design, build_design
from epiatlas.models.families import Family
from epiatlas.models.folds import grouped_folds
from epiatlas.models.path import alpha_grid, cross_validate, fit_path
from epiatlas.models.settings import ModelSettings
from epiatlas.models.threads import fit_threads

L1_RATIO = 0.5


def synthetic(n_regions: int, n_periods: int, n_covariates: int, seed: int = 0) -> pd.DataFrame:
    """Poisson counts with five non-zero effects among `n_covariates` correlated covariates."""
    rng = np.random.default_rng(seed)
    n = n_regions * n_periods
    latent = rng.normal(size=(n, 1))
    x = 0.5 * latent + rng.normal(size=(n, n_covariates))
    beta = np.zeros(n_covariates)
    beta[:5] = [0.2, -0.15, 0.1, 0.08, -0.05]
    expected = rng.uniform(5.0, 100.0, n)
    frame = pd.DataFrame(x, columns=[f"x{j:02d}" for j in range(n_covariates)])
    frame.insert(0, "region_id", np.repeat([f"R{r:05d}" for r in range(n_regions)], n_periods))
    frame.insert(1, "period", np.tile(np.arange(2010, 2010 + n_periods), n_regions))
    frame["cases"] = rng.poisson(expected * np.exp(x @ beta))
    frame["expected_cases"] = expected
    return frame


def statsmodels_path(design: Design, alphas: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Coefficients (intercept first) at each α from statsmodels' elastic net, warm-started along the path."""
    exog = np.column_stack([np.ones(len(rows)), design.X.to_numpy()[rows]])
    model = sm.GLM(design.y[rows], exog, family=sm.families.Poisson(), offset=design.offset[rows])
    weight = np.concatenate([[0.0], design.penalized.astype(float)])
    start = np.zeros(exog.shape[1])
    start[0] = np.log(design.y[rows].sum() / np.exp(design.offset[rows]).sum())
    path = []
    for alpha in alphas:
        fit = model.fit_regularized(method="elastic_net", alpha=alpha * weight, L1_wt=L1_RATIO, start_params=start)
        start = fit.params
        path.append(start)
    return np.array(path)


def statsmodels_cv(design: Design, alphas: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Held-out Poisson deviance per α summed over folds with statsmodels' path."""
    X = np.column_stack([np.ones(len(design.y)), design.X.to_numpy()])
    total = np.zeros(len(alphas))
    for k in range(int(folds.max()) + 1):
        test = folds == k
        coefs = statsmodels_path(design, alphas, np.flatnonzero(~test))
        mu = np.exp(coefs @ X[test].T + design.offset[test][None, :])
        total += Family("poisson").unit_deviance(design.y[test][None, :], mu, None).sum(axis=1)
    return total


def kkt_violation(design: Design, alphas: np.ndarray, intercepts: np.ndarray, coefs: np.ndarray) -> float:
    """Largest violation of the elastic-net optimality conditions over the path, relative to α."""
    X = design.X.to_numpy()
    worst = 0.0
    for alpha, b0, b in zip(alphas, intercepts, coefs, strict=True):
        gradient = X.T @ (design.y - np.exp(b0 + X @ b + design.offset)) / len(design.y)
        target = alpha * (L1_RATIO * np.sign(b) + (1 - L1_RATIO) * b)
        violation = np.where(b != 0, np.abs(gradient - target), np.maximum(np.abs(gradient) - alpha * L1_RATIO, 0))
        worst = max(worst, float(violation[design.penalized].max() / alpha))
    return worst


def main() -> None:
    """Time both implementations on the same design, grid and folds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=2500)
    parser.add_argument("--periods", type=int, default=10)
    parser.add_argument("--covariates", type=int, default=30)
    parser.add_argument("--n-alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    frame = synthetic(args.regions, args.periods, args.covariates)
    covariates = [c for c in frame.columns if c.startswith("x")]
    settings = ModelSettings(covariates=covariates, family="poisson", n_alphas=args.n_alphas, cv_folds=args.folds)
    design = build_design(frame, settings, "cases")
    folds = grouped_folds(design.groups, args.folds, settings.seed)
    print(f"{len(design.y)} rows x {len(covariates)} covariates, {args.n_alphas} alphas, {args.folds} folds")
    with fit_threads():
        null_columns = list(design.X.columns[~design.penalized])
        exog = np.column_stack([np.ones(len(design.y)), design.X[null_columns].to_numpy()])
        null_mu = sm.GLM(design.y, exog, family=sm.families.Poisson(), offset=design.offset).fit().fittedvalues
        alphas = alpha_grid(design, Family("poisson"), null_mu, L1_RATIO, args.n_alphas, settings.alpha_min_ratio)
        start, cpu = time.perf_counter(), time.process_time()
        cv_glum = cross_validate(design, Family("poisson"), alphas, L1_RATIO, folds)
        full = fit_path(design, Family("poisson"), alphas, L1_RATIO, np.arange(len(design.y)))
        glum_s, glum_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        cv_sm = statsmodels_cv(design, alphas, folds)
        sm_full = statsmodels_path(design, alphas, np.arange(len(design.y)))
        sm_s, sm_cpu = time.perf_counter() - start, time.process_time() - cpu
    glum_kkt = kkt_violation(design, alphas, full.intercepts, full.coefs)
    sm_kkt = kkt_violation(design, alphas, sm_full[:, 0], sm_full[:, 1:])
    for name, wall, cpu_s, kkt in (("glum (epiatlas)", glum_s, glum_cpu, glum_kkt),
                                   ("statsmodels fit_regularized", sm_s, sm_cpu, sm_kkt)):  # fmt: skip
        print(f"{name:27} {wall:8.2f} s wall {cpu_s:8.2f} s CPU  KKT violation {kkt:.1e} x alpha")
    print(f"ratio statsmodels / glum    {sm_s / glum_s:8.1f}x wall {sm_cpu / glum_cpu:8.1f}x CPU")
    gap = np.abs(cv_sm / cv_glum.n.sum() - cv_glum.mean()).max()
    print(f"largest CV deviance difference between the two: {gap:.2e}")


if __name__ == "__main__":
    main()
