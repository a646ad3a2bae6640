"""The `region_period_outcomes` table: cases, severity, expected cases, SHR and rates per region x year."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from epiatlas.config import OutcomesConfig
from epiatlas.outcomes.age_groups import MAX_LOOKUP_AGE, register_age_lookup
from epiatlas.outcomes.case_definitions import case_predicate_sql
from epiatlas.outcomes.exact import exact_sum_sql, group_unit_sql
from epiatlas.outcomes.errors import MissingPeriodError, MissingPopulationError
from epiatlas.outcomes.intervals import fay_feuer_ci, poisson_exact_ci
from epiatlas.outcomes.periods import checked_periods, date_in_periods_sql
from epiatlas.outcomes.severity import SeverityDefinition, severity_definition
from epiatlas.outcomes.standardisation import (
    build_strata,
    reference_population,
    register_reference,
    standardised_totals_sql,
)

PER_100K = 100_000.0
COUNT_COLUMNS = ("cases", "deaths", "severe_cases", "population")
COLUMNS = (
    "region_id", "period", "cases", "deaths", "severe_cases", "population", "expected_cases",
    "shr", "shr_lower", "shr_upper",
    "crude_rate", "crude_rate_lower", "crude_rate_upper",
    "std_rate", "std_rate_lower", "std_rate_upper",
    "suppressed", "suppression_threshold",
)  # fmt: skip


def region_period_outcomes(
    con: duckdb.DuckDBPyConnection, cfg: OutcomesConfig, periods: Sequence[int]
) -> pd.DataFrame:
    """Outcomes per region x period from record-level `hospitalizations` and `census` (all regions present)."""
    periods = checked_periods(periods)
    _require_census_periods(con, periods)
    severity = severity_definition(con, cfg.severity)
    lookup = register_age_lookup(con)
    build_strata(con, _case_strata_sql(cfg, severity, lookup, periods), periods)
    reference = reference_population(con, cfg.reference_population)
    register_reference(con, reference)
    fills = {"cases": "0", "deaths": "0", "severe_cases": "0" if severity.predicate_sql else "NULL"}
    totals = _every_region(con, standardised_totals_sql(reference), periods, fills)
    result = _with_estimates(totals, cfg)
    standard = "age x sex" if reference["sex"].notna().all() else "age"
    result.attrs["metadata"] = _metadata(
        cfg,
        severity=severity.describe(),
        standardisation=f"indirect by age x sex against each period's all-region rates; direct by {standard} "
        f"({_describe_reference(cfg)}), Fay-Feuer interval",
    )
    return result


def region_period_outcomes_from_counts(
    con: duckdb.DuckDBPyConnection,
    cfg: OutcomesConfig,
    periods: Sequence[int],
    undated_period: int | None = None,
) -> pd.DataFrame:
    """Outcomes per region x period from aggregated `hospitalization_counts` (no age strata, so no std_rate).

    Expected cases come from `expected_cases` when given, else population x the period's overall crude rate.
    Rows without a period (or a table without the column) are assigned `undated_period`.
    """
    periods = checked_periods(periods)
    counts = _counts_select_sql(con, undated_period)
    fills = {"cases": "0"}
    totals = _every_region(con, _counts_totals_sql(counts), periods, fills)
    result = _with_estimates(totals, cfg)
    result.attrs["metadata"] = _metadata(
        cfg,
        severity="as supplied in hospitalization_counts (NULL when the source has none)",
        standardisation="aggregated input: expected_cases as supplied, else population x the period's overall "
        "crude rate (no age standardisation); std_rate is NULL",
    )
    return result


def _require_census_periods(con: duckdb.DuckDBPyConnection, periods: list[int]) -> None:
    """Fail when the census has no population for a requested year (no silent carry-forward)."""
    present = {row[0] for row in con.execute("SELECT DISTINCT year FROM census").fetchall()}
    missing = [p for p in periods if p not in present]
    if missing:
        raise MissingPopulationError(f"census: no population rows for period(s) {missing}")


def _case_strata_sql(cfg: OutcomesConfig, severity: SeverityDefinition, lookup: str, periods: list[int]) -> str:
    """SQL: cases, deaths and severe cases per region x year x age group x sex, aggregated in DuckDB."""
    severe = f"count_if({severity.predicate_sql})" if severity.predicate_sql else "NULL"
    return f"""
        SELECT h.region_id, year(h.admission_date)::INTEGER AS period, l.age_group, h.sex,
               count(*) AS cases, count_if(h.discharge_status = 'death') AS deaths, {severe} AS severe_cases
        FROM hospitalizations h
        LEFT JOIN {lookup} l ON l.age = least(h.age, {MAX_LOOKUP_AGE})
        WHERE {case_predicate_sql(cfg.case_icd10, "h.icd10")}
          AND {date_in_periods_sql("h.admission_date", periods)}
          AND h.region_id IN (SELECT region_id FROM regions)
        GROUP BY ALL
    """


def _counts_select_sql(con: duckdb.DuckDBPyConnection, undated_period: int | None) -> str:
    """SQL reading `hospitalization_counts` with absent optional columns as NULL and periods filled in."""
    present = {row[0] for row in con.execute("DESCRIBE hospitalization_counts").fetchall()}
    has_undated = "period" not in present or con.execute(
        "SELECT count(*) > 0 FROM hospitalization_counts WHERE period IS NULL"
    ).fetchone()[0]
    if has_undated and undated_period is None:
        raise MissingPeriodError(
            "hospitalization_counts: rows have no period; pass undated_period (e.g. the config's periods.end)"
        )
    undated = "NULL" if undated_period is None else str(int(undated_period))
    period = f"coalesce(period, {undated})" if "period" in present else undated
    optional = {"deaths": "BIGINT", "severe_cases": "BIGINT", "population": "BIGINT", "expected_cases": "DOUBLE"}
    columns = [f"{c}::{t} AS {c}" if c in present else f"NULL::{t} AS {c}" for c, t in optional.items()]
    return (
        f"SELECT region_id, ({period})::INTEGER AS period, cases::BIGINT AS cases, {', '.join(columns)} "
        "FROM hospitalization_counts"
    )


def _counts_totals_sql(counts_sql: str) -> str:
    """SQL: per region x period sums, expected from the column or population x the period's crude rate."""
    return f"""
        WITH counts AS (
            SELECT region_id, period, sum(cases) AS cases, sum(deaths) AS deaths,
                   sum(severe_cases) AS severe_cases, sum(population) AS population,
                   {exact_sum_sql("expected_cases", "expected_unit")} AS expected_cases
            FROM (SELECT *, {group_unit_sql("expected_cases", "region_id, period")} AS expected_unit
                  FROM ({counts_sql}) WHERE region_id IN (SELECT region_id FROM regions))
            GROUP BY region_id, period
        ), rates AS (
            SELECT period, sum(cases) FILTER (population IS NOT NULL) / nullif(sum(population), 0) AS rate
            FROM counts GROUP BY ALL
        )
        SELECT region_id, period, cases, deaths, severe_cases, population,
               coalesce(expected_cases, population * rate) AS expected_cases,
               NULL::DOUBLE AS std_rate, NULL::DOUBLE AS std_variance, NULL::DOUBLE AS std_max_weight
        FROM counts JOIN rates USING (period)
    """


def _every_region(
    con: duckdb.DuckDBPyConnection, totals_sql: str, periods: list[int], fills: dict[str, str]
) -> pd.DataFrame:
    """Every region x requested period, left-joined to the totals; absent rows take `fills` (else NULL)."""
    period_values = ", ".join(f"({p})" for p in periods)
    fill = {c: f"coalesce(t.{c}, {fills[c]})" if c in fills else f"t.{c}" for c in COUNT_COLUMNS}
    return con.execute(
        f"""
        WITH t AS ({totals_sql})
        SELECT r.region_id, p.period::INTEGER AS period,
               {", ".join(f"{expr}::BIGINT AS {c}" for c, expr in fill.items())},
               t.expected_cases::DOUBLE AS expected_cases, t.std_rate, t.std_variance, t.std_max_weight
        FROM (SELECT DISTINCT region_id FROM regions) r
        CROSS JOIN (VALUES {period_values}) p(period)
        LEFT JOIN t ON t.region_id = r.region_id AND t.period = p.period
        ORDER BY r.region_id, p.period
        """
    ).df()


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is missing or zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _with_estimates(totals: pd.DataFrame, cfg: OutcomesConfig) -> pd.DataFrame:
    """Add SHR, crude and standardised rates with intervals, and the suppression flag, on the small table."""
    level = cfg.confidence_level
    cases = totals["cases"].to_numpy(dtype=float, na_value=np.nan)
    expected = totals["expected_cases"].to_numpy(dtype=float, na_value=np.nan)
    population = totals["population"].to_numpy(dtype=float, na_value=np.nan) / PER_100K
    count_lower, count_upper = poisson_exact_ci(cases, level)
    std = [totals[c].to_numpy(dtype=float, na_value=np.nan) for c in ("std_rate", "std_variance", "std_max_weight")]
    std_lower, std_upper = fay_feuer_ci(*std, level)
    counts_types = {"period": "Int32", **dict.fromkeys(COUNT_COLUMNS, "Int64")}
    out = totals[["region_id", "period", *COUNT_COLUMNS]].astype(counts_types)
    estimates = {
        "expected_cases": expected,
        "shr": _ratio(cases, expected),
        "shr_lower": _ratio(count_lower, expected),
        "shr_upper": _ratio(count_upper, expected),
        "crude_rate": _ratio(cases, population),
        "crude_rate_lower": _ratio(count_lower, population),
        "crude_rate_upper": _ratio(count_upper, population),
        "std_rate": std[0] * PER_100K,
        "std_rate_lower": std_lower * PER_100K,
        "std_rate_upper": std_upper * PER_100K,
    }
    for name, values in estimates.items():
        out[name] = pd.array(values, dtype="Float64")
    threshold = cfg.suppression_threshold
    out["suppressed"] = ((out["cases"] > 0) & (out["cases"] < threshold)).astype("boolean")
    out["suppression_threshold"] = pd.array([threshold] * len(out), dtype="Int32")
    out["region_id"] = out["region_id"].astype("string")
    return out[list(COLUMNS)]


def _describe_reference(cfg: OutcomesConfig) -> str:
    """Plain-language name of the standard population."""
    ref = cfg.reference_population
    if ref.kind == "custom":
        return "custom age-group weights"
    return f"study census population of {ref.year}" if ref.year is not None else "study census pooled over all years"


def _metadata(cfg: OutcomesConfig, *, severity: str, standardisation: str) -> dict[str, str]:
    """Definitions a reader of the table needs, as strings ready for Dagster metadata."""
    return {
        "case_definition": "ICD-10 " + ", ".join(cfg.case_icd10),
        "severity": severity,
        "standardisation": standardisation,
        "intervals": f"{cfg.confidence_level:.0%} exact Poisson (Garwood) for SHR and crude rate; rates per 100,000",
        "suppression": f"suppressed = 0 < cases < {cfg.suppression_threshold}; true zeros stay visible. The "
        f"published view also blanks deaths and severe_cases from 1 to {cfg.suppression_threshold - 1}",
    }
