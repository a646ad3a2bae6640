"""fit_indices: standardised indicators -> adequacy, number of factors, rotated loadings, scores and quintiles."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epiatlas.errors import IndicesError
from epiatlas.indices.adequacy import adequacy, check_not_singular, correlation, standardise
from epiatlas.indices.extraction import extract, max_factors, orient, rotate
from epiatlas.indices.inputs import KEYS, check_block, indicator_frame, logit_percent
from epiatlas.indices.parallel import parallel_analysis
from epiatlas.indices.scores import factor_names, quintiles, regression_scores
from epiatlas.indices.settings import IndicesSettings
from epiatlas.models.threads import fit_threads

COMPOSITE = "composite"
HEYWOOD_COMMUNALITY = 0.995


@dataclass
class IndicesResult:
    """Tidy tables of one indices fit; `period` is NA in the fit-level frames of a pooled fit.

    loadings: period, factor, indicator, loading, communality, uniqueness (pattern loadings; the composite's
    rows hold its unrotated loadings; communality and uniqueness are the k-factor model's, per indicator).
    diagnostics: one row per fit: period, n_rows, n_indicators, kmo, bartlett_chi2, bartlett_df, bartlett_p,
    n_factors, method, rotation, transform. variance: period, factor, ss_loadings, proportion, cumulative.
    msa: period, indicator, msa. parallel: period, position, observed, random_quantile (empty when k is fixed).
    scores: region_id, period, index, score, quintile (1 = least, 5 = most deprived within the period).
    """

    loadings: pd.DataFrame
    diagnostics: pd.DataFrame
    variance: pd.DataFrame
    msa: pd.DataFrame
    parallel: pd.DataFrame
    scores: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Fit:
    """Frames of one fit (all rows, or one period) before they are stacked."""

    loadings: pd.DataFrame
    diagnostics: pd.DataFrame
    variance: pd.DataFrame
    msa: pd.DataFrame
    parallel: pd.DataFrame
    scores: pd.DataFrame
    warnings: list[str]


def _number_of_factors(r: np.ndarray, n_rows: int, settings: IndicesSettings, label: str) -> tuple[int, pd.DataFrame]:
    """Fixed k, or parallel analysis (at least 1, at most the identifiable maximum), with its eigenvalue table."""
    k_max = max_factors(r.shape[0])
    if settings.n_factors != "parallel":
        if settings.n_factors > k_max:
            raise IndicesError(
                f"{label}: n_factors={settings.n_factors} is not identifiable with {r.shape[0]} indicators "
                f"(at most {k_max}); lower indices.n_factors"
            )
        return settings.n_factors, pd.DataFrame(columns=["position", "observed", "random_quantile"])
    pa = parallel_analysis(
        r, n_rows, settings.method, settings.parallel_iterations, settings.parallel_quantile, settings.seed
    )
    table = pd.DataFrame(
        {"position": np.arange(1, len(pa.observed) + 1), "observed": pa.observed, "random_quantile": pa.random_quantile}
    )
    return min(max(pa.n_factors, 1), k_max), table


def _adequacy_warnings(kmo: float, msa: np.ndarray, indicators: list[str], settings: IndicesSettings) -> list[str]:
    """Warnings for an overall KMO or per-variable MSA below the configured thresholds."""
    out = []
    if kmo < settings.kmo_warn:
        out.append(f"KMO {kmo:.3f} < {settings.kmo_warn}: the indicators share little common variance")
    out += [
        f"MSA of {name} {value:.3f} < {settings.msa_warn}: consider dropping it from indices.indicators"
        for name, value in zip(indicators, msa, strict=True)
        if value < settings.msa_warn
    ]
    return out


def _fit_block(block: pd.DataFrame, settings: IndicesSettings, label: str) -> _Fit:
    """One factor analysis on the rows of `block` (all periods pooled, or one period)."""
    names = settings.indicators
    values = block[names].to_numpy(dtype=float)
    if settings.transform == "logit":
        values = logit_percent(values, names)
    check_block(values, names, label)
    z, _, _ = standardise(values)
    r = correlation(z)
    check_not_singular(r, names, label)
    stats = adequacy(r, len(z))
    k, parallel = _number_of_factors(r, len(z), settings, label)
    unrotated, fit_warnings = extract(r, k, settings.method)
    solution = rotate(unrotated, settings.rotation)
    factors = factor_names(solution.pattern, names)
    general = solution.unrotated[:, :1]

    communality = solution.communality
    warnings = [f"{label}: {w}" for w in _adequacy_warnings(stats.kmo, stats.msa, names, settings) + fit_warnings]
    if parallel.shape[0] and k == 1 and not (parallel["observed"] > parallel["random_quantile"]).iloc[0]:
        warnings.append(f"{label}: parallel analysis found no factor above random data; one factor kept")
    warnings += [
        f"{label}: Heywood case: communality of {n} is {c:.3f} (uniqueness near 0)"
        for n, c in zip(names, communality, strict=True)
        if c > HEYWOOD_COMMUNALITY
    ]

    all_loadings = np.hstack([solution.pattern, general])
    index_names = [*factors, COMPOSITE]
    loadings = pd.DataFrame(
        {
            "factor": np.repeat(index_names, len(names)),
            "indicator": np.tile(names, len(index_names)),
            "loading": all_loadings.T.ravel(),
            "communality": np.tile(communality, len(index_names)),
            "uniqueness": np.tile(1.0 - communality, len(index_names)),
        }
    )
    ss = (solution.pattern**2).sum(axis=0)
    variance = pd.DataFrame(
        {"factor": factors, "ss_loadings": ss, "proportion": ss / len(names), "cumulative": np.cumsum(ss) / len(names)}
    )
    diagnostics = pd.DataFrame(
        {
            "n_rows": [len(z)],
            "n_indicators": [len(names)],
            "kmo": [stats.kmo],
            "bartlett_chi2": [stats.bartlett_chi2],
            "bartlett_df": [stats.bartlett_df],
            "bartlett_p": [stats.bartlett_p],
            "n_factors": [k],
            "method": [settings.method],
            "rotation": [settings.rotation if k > 1 else "none"],
            "transform": [settings.transform],
        }
    )
    score_matrix = np.hstack([regression_scores(z, r, solution.structure), regression_scores(z, r, general)])
    scores = pd.DataFrame(
        {
            "region_id": np.tile(block["region_id"].to_numpy(), len(index_names)),
            "period": np.tile(block["period"].to_numpy(), len(index_names)),
            "index": np.repeat(index_names, len(z)),
            "score": score_matrix.T.ravel(),
        }
    )
    msa = pd.DataFrame({"indicator": names, "msa": stats.msa})
    return _Fit(loadings, diagnostics, variance, msa, parallel, scores, warnings)


def _stack(frames: list[pd.DataFrame], periods: list[object]) -> pd.DataFrame:
    """Concatenate per-fit frames with a leading nullable `period` column."""
    out = [f.assign(period=p)[["period", *f.columns]] for f, p in zip(frames, periods, strict=True)]
    stacked = pd.concat(out, ignore_index=True)
    stacked["period"] = stacked["period"].astype("Int64")
    return stacked


def fit_indices(frame: pd.DataFrame, settings: IndicesSettings) -> IndicesResult:
    """Socioeconomic factor indices: adequacy, parallel analysis, rotated loadings, scores and quintiles.

    Parameters
    ----------
    frame : one row per region_id x period with the indicator columns named in `settings.indicators`.
    settings : indicator set, extraction method, rotation, number of factors and thresholds.

    Returns
    -------
    IndicesResult with tidy `loadings`, `diagnostics`, `variance`, `msa`, `parallel`, `scores` and `warnings`.
    Each factor is oriented so that a higher score means more deprivation (non-negative loading sum) and
    factors are ordered by SS loadings; 'composite' is the first unrotated factor, a single general
    deprivation index in the spirit of CONAPO's marginalisation index.

    References
    ----------
    Kaiser, H. F. (1974). An index of factorial simplicity. Psychometrika, 39(1), 31-36.
    Bartlett, M. S. (1950). Tests of significance in factor analysis. Br. J. Psychol. Stat. Sect., 3(2), 77-85.
    Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis. Psychometrika, 30, 179-185.
    Kaiser, H. F. (1958). The varimax criterion for analytic rotation in factor analysis. Psychometrika, 23, 187-200.
    CONAPO (2021). Indice de marginacion por entidad federativa y municipio 2020: nota tecnico-metodologica.
    Consejo Nacional de Poblacion, Mexico.
    """
    data = indicator_frame(frame, settings.indicators)
    with fit_threads():
        if settings.pooled:
            fits, periods = [_fit_block(data, settings, "pooled fit")], [pd.NA]
        else:
            periods = list(data["period"].drop_duplicates())
            fits = [_fit_block(data[data["period"] == p], settings, f"period {p}") for p in periods]
    scores = pd.concat([f.scores for f in fits], ignore_index=True)
    scores = scores.sort_values(["index", "period", "region_id"], kind="stable", ignore_index=True)
    scores["quintile"] = quintiles(scores["score"], [scores["index"], scores["period"]])
    return IndicesResult(
        loadings=_stack([f.loadings for f in fits], periods),
        diagnostics=_stack([f.diagnostics for f in fits], periods),
        variance=_stack([f.variance for f in fits], periods),
        msa=_stack([f.msa for f in fits], periods),
        parallel=_stack([f.parallel for f in fits], periods),
        scores=scores[[*KEYS, "index", "score", "quintile"]],
        warnings=[w for f in fits for w in f.warnings],
    )
