"""fit_indices: standardised indicators -> adequacy, number of factors, rotated loadings, scores and quintiles."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from epiatlas.errors import IndicesError
from epiatlas.indices.adequacy import adequacy, check_not_singular, correlation, standardise
from epiatlas.indices.extraction import extract, max_factors, rotate
from epiatlas.indices.inputs import check_block, indicator_frame, logit_percent
from epiatlas.indices.parallel import parallel_analysis
from epiatlas.indices.scores import factor_names, regression_scores
from epiatlas.indices.settings import IndicesSettings
from epiatlas.indices.tables import diagnostics_frame, loadings_frame, scores_frame, variance_frame
from epiatlas.models.threads import fit_threads

COMPOSITE = "composite"
HEYWOOD_COMMUNALITY = 0.995
FIT_LEVEL = ("loadings", "diagnostics", "variance", "msa", "parallel")


@dataclass
class IndicesResult:
    """Tidy tables of an indices fit; fit-level frames start with `period` (NA for the pooled fit).

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


def _number_of_factors(
    r: np.ndarray, n_rows: int, settings: IndicesSettings, label: str
) -> tuple[int, pd.DataFrame, list[str]]:
    """Fixed k, or parallel analysis (at least 1, at most the identifiable maximum), its table and warnings."""
    k_max = max_factors(r.shape[0])
    if settings.n_factors != "parallel":
        if settings.n_factors > k_max:
            raise IndicesError(
                f"{label}: n_factors={settings.n_factors} is not identifiable with {r.shape[0]} indicators "
                f"(at most {k_max}); lower indices.n_factors"
            )
        empty = {"position": pd.Series(dtype="int64"), "observed": pd.Series(dtype="float64")}
        return settings.n_factors, pd.DataFrame(empty | {"random_quantile": pd.Series(dtype="float64")}), []
    pa = parallel_analysis(
        r, n_rows, settings.method, settings.parallel_iterations, settings.parallel_quantile, settings.seed
    )
    table = pd.DataFrame(
        {"position": np.arange(1, len(pa.observed) + 1), "observed": pa.observed, "random_quantile": pa.random_quantile}
    )
    warnings = []
    if pa.n_factors == 0:
        warnings.append(f"{label}: parallel analysis found no factor above random data; one factor kept")
    if pa.n_factors > k_max:
        warnings.append(f"{label}: parallel analysis suggests {pa.n_factors} factors; {k_max} kept (identifiable)")
    return min(max(pa.n_factors, 1), k_max), table, warnings


def _quality_warnings(
    kmo: float, msa: np.ndarray, communality: np.ndarray, settings: IndicesSettings, label: str
) -> list[str]:
    """Warnings for KMO or per-variable MSA below the thresholds, and for Heywood cases."""
    names = settings.indicators
    out = []
    if kmo < settings.kmo_warn:
        out.append(f"{label}: KMO {kmo:.3f} < {settings.kmo_warn}: the indicators share little common variance")
    out += [
        f"{label}: MSA of {name} {value:.3f} < {settings.msa_warn}: consider dropping it from indices.indicators"
        for name, value in zip(names, msa, strict=True)
        if value < settings.msa_warn
    ]
    return out + [
        f"{label}: Heywood case: communality of {name} is {value:.3f} (uniqueness near 0)"
        for name, value in zip(names, communality, strict=True)
        if value > HEYWOOD_COMMUNALITY
    ]


def _fit_block(block: pd.DataFrame, settings: IndicesSettings, label: str) -> IndicesResult:
    """One factor analysis on the rows of `block` (all periods pooled, or one period); no `period` column yet."""
    names = settings.indicators
    values = block[names].to_numpy(dtype=float)
    if settings.transform == "logit":
        values = logit_percent(values, names)
    check_block(values, names, label)
    z, _, _ = standardise(values)
    r = correlation(z)
    check_not_singular(r, names, label)
    stats = adequacy(r, len(z))
    k, parallel, k_warnings = _number_of_factors(r, len(z), settings, label)
    unrotated, fit_warnings = extract(r, k, settings.method)
    solution = rotate(unrotated, settings.rotation)
    factors = factor_names(solution.pattern, names)
    index_names = [*factors, COMPOSITE]
    general = solution.unrotated[:, :1]
    scores = np.hstack([regression_scores(z, r, solution.structure), regression_scores(z, r, general)])
    return IndicesResult(
        loadings=loadings_frame(index_names, names, np.hstack([solution.pattern, general]), solution.communality),
        diagnostics=diagnostics_frame(stats, len(z), k, settings),
        variance=variance_frame(factors, solution.pattern),
        msa=pd.DataFrame({"indicator": names, "msa": stats.msa}),
        parallel=parallel,
        scores=scores_frame(block, index_names, scores),
        warnings=_quality_warnings(stats.kmo, stats.msa, solution.communality, settings, label)
        + [f"{label}: {w}" for w in fit_warnings]
        + k_warnings,
    )


def _stack(results: list[IndicesResult], periods: list[object]) -> IndicesResult:
    """One result from per-fit results: fit-level frames get a leading nullable `period` column."""

    def with_period(frame: pd.DataFrame, period: object) -> pd.DataFrame:
        return frame.assign(period=period)[["period", *frame.columns]].astype({"period": "Int64"})

    stacked = {
        f.name: pd.concat(
            [with_period(getattr(res, f.name), p) if f.name in FIT_LEVEL else getattr(res, f.name)
             for res, p in zip(results, periods, strict=True)],
            ignore_index=True,
        )
        for f in fields(IndicesResult)
        if f.name != "warnings"
    }  # fmt: skip
    order = ["index", "period", "region_id"]
    stacked["scores"] = stacked["scores"].sort_values(order, kind="stable", ignore_index=True)
    return IndicesResult(**stacked, warnings=[w for res in results for w in res.warnings])


def fit_indices(frame: pd.DataFrame, settings: IndicesSettings) -> IndicesResult:
    """Socioeconomic factor indices: adequacy, parallel analysis, rotated loadings, scores and quintiles.

    Parameters
    ----------
    frame : one row per region_id x period (integer) with the indicator columns named in `settings.indicators`.
    settings : indicator set, transform, extraction method, rotation, number of factors and thresholds.

    Returns
    -------
    IndicesResult with tidy `loadings`, `diagnostics`, `variance`, `msa`, `parallel`, `scores` and `warnings`.
    Indicators are standardised over the rows of each fit (all region x period rows when `pooled`, so scores
    are comparable over time). Each factor is oriented so that a higher score means more deprivation
    (non-negative loading sum) and factors are ordered by SS loadings; 'composite' is the first unrotated
    factor, one general deprivation index in the spirit of CONAPO's marginalisation index.

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
            return _stack([_fit_block(data, settings, "pooled fit")], [pd.NA])
        periods = list(data["period"].drop_duplicates())
        return _stack([_fit_block(data[data["period"] == p], settings, f"period {p}") for p in periods], periods)
