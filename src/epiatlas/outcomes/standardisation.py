"""Age x sex strata in DuckDB: indirect standardisation (expected cases) and direct standardisation sums."""

from __future__ import annotations

import duckdb
import pandas as pd

from epiatlas.config import ReferencePopulationConfig
from epiatlas.outcomes.age_groups import census_age_groups
from epiatlas.outcomes.exact import exact_sum_sql, group_unit_sql
from epiatlas.outcomes.errors import AgeGroupError, MissingPopulationError, ReferencePopulationError
from epiatlas.outcomes.temp_tables import create_temp_table

STRATA_TABLE = "_epiatlas_strata"
REFERENCE_TABLE = "_epiatlas_reference"


def reference_population(con: duckdb.DuckDBPyConnection, cfg: ReferencePopulationConfig) -> pd.DataFrame:
    """Standard population weights (summing to 1) by age_group and sex; sex is None for age-only weights."""
    if cfg.kind == "custom":
        return _custom_reference(con, cfg.weights or {})
    year_filter = f"AND c.year = {int(cfg.year)}" if cfg.year is not None else ""
    reference = con.execute(
        f"""
        SELECT c.age_group, c.sex, sum(c.population)::DOUBLE AS population
        FROM census c SEMI JOIN regions r ON r.region_id = c.region_id
        WHERE TRUE {year_filter}
        GROUP BY ALL ORDER BY ALL
        """
    ).df()
    total = reference["population"].sum()
    if reference.empty or total <= 0:
        when = f"year {cfg.year}" if cfg.year is not None else "any year"
        raise ReferencePopulationError(f"reference_population: census has no population for {when}")
    return pd.DataFrame(
        {"age_group": reference["age_group"], "sex": reference["sex"], "weight": reference["population"] / total}
    )


def _custom_reference(con: duckdb.DuckDBPyConnection, weights: dict[str, float]) -> pd.DataFrame:
    """Custom age-group weights, checked against the census labels and normalised to sum to 1."""
    census_groups = set(census_age_groups(con)["age_group"])
    if set(weights) != census_groups:
        raise ReferencePopulationError(
            "reference_population.weights: age groups must match the census exactly; "
            f"missing {sorted(census_groups - set(weights))}, unknown {sorted(set(weights) - census_groups)}"
        )
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ReferencePopulationError("reference_population.weights: weights must be >= 0 with a positive sum")
    total = sum(weights.values())
    groups = sorted(weights)
    normalised = [weights[g] / total for g in groups]
    return pd.DataFrame({"age_group": groups, "sex": [None] * len(groups), "weight": normalised})


def build_strata(con: duckdb.DuckDBPyConnection, case_strata_sql: str, periods: list[int]) -> str:
    """Materialise population and case counts per region x period x age_group x sex; return the table name.

    `case_strata_sql` yields region_id, period, age_group, sex, cases, deaths, severe_cases.
    Census strata without cases get zero cases; case strata without census rows get population 0.
    """
    period_list = ", ".join(str(p) for p in periods)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {STRATA_TABLE} AS
        WITH population AS (
            SELECT c.region_id, c.year::INTEGER AS period, c.age_group, c.sex, sum(c.population) AS population
            FROM census c SEMI JOIN regions r ON r.region_id = c.region_id
            WHERE c.year IN ({period_list})
            GROUP BY ALL
        ), case_strata AS ({case_strata_sql})
        SELECT region_id, period, age_group, sex,
               coalesce(p.population, 0)::BIGINT AS population,
               coalesce(k.cases, 0)::BIGINT AS cases,
               coalesce(k.deaths, 0)::BIGINT AS deaths,
               k.severe_cases::BIGINT AS severe_cases
        FROM population p FULL JOIN case_strata k USING (region_id, period, age_group, sex)
        """
    )
    _check_strata(con)
    return STRATA_TABLE


def _check_strata(con: duckdb.DuckDBPyConnection) -> None:
    """Fail on cases without an age group, and on cases in a stratum nobody lives in during that period."""
    unmapped = con.execute(f"SELECT sum(cases) FROM {STRATA_TABLE} WHERE age_group IS NULL").fetchone()[0]
    if unmapped:
        raise AgeGroupError(
            f"hospitalizations.age: {unmapped} case(s) have a NULL age or one below the youngest census age group"
        )
    empty = con.execute(
        f"""
        SELECT period, age_group, sex, sum(cases) AS cases FROM {STRATA_TABLE}
        GROUP BY ALL HAVING sum(population) = 0 AND sum(cases) > 0 ORDER BY ALL LIMIT 5
        """
    ).fetchall()
    if empty:
        raise MissingPopulationError(f"census: cases in strata with zero population in every region: {empty}")


def standardised_totals_sql(reference: pd.DataFrame) -> str:
    """SQL over the strata table: per region x period totals, expected cases and direct-standardisation sums.

    Expected = sum over strata of population x the period's all-region stratum rate (indirect method), so
    expected sums to observed within each period. Floating-point sums are exact fixed-point sums
    (`epiatlas.outcomes.exact`): bit-identical run after run and accurate relative to their terms. The direct
    rate is sum(w c / n) with its variance sum(w^2 c / n^2) and max(w / n) for the Fay-Feuer interval; a
    stratum with n = 0 and c = 0 adds nothing to the rate and is left out of max(w / n) (its weight is not
    redistributed); a stratum with cases but n = 0 leaves the rate undefined (NULL).
    """
    by_sex = reference["sex"].notna().all()
    keys = "age_group, sex" if by_sex else "age_group"
    direct_strata = (
        f"SELECT region_id, period, {keys}, cases AS c, population AS n FROM {STRATA_TABLE}"
        if by_sex
        else f"SELECT region_id, period, {keys}, sum(cases) AS c, sum(population) AS n "
        f"FROM {STRATA_TABLE} GROUP BY ALL"
    )
    group = "region_id, period"
    return f"""
        WITH stratum_rates AS (
            SELECT period, age_group, sex, sum(cases) / nullif(sum(population), 0) AS rate
            FROM {STRATA_TABLE} GROUP BY ALL
        ), expected_strata AS (
            SELECT *, {group_unit_sql("expected", group)} AS expected_unit
            FROM (SELECT s.*, s.population * coalesce(r.rate, 0) AS expected
                  FROM {STRATA_TABLE} s JOIN stratum_rates r USING (period, age_group, sex))
        ), totals AS (
            SELECT region_id, period, sum(cases) AS cases, sum(deaths) AS deaths,
                   sum(severe_cases) AS severe_cases, sum(population) AS population,
                   {exact_sum_sql("expected", "expected_unit")} AS expected_cases
            FROM expected_strata
            GROUP BY region_id, period
        ), direct_terms AS (
            SELECT *, {group_unit_sql("rate_term", group)} AS rate_unit,
                   {group_unit_sql("variance_term", group)} AS variance_unit
            FROM (SELECT d.region_id, d.period, d.n = 0 AND d.c > 0 AS undefined,
                         w.weight * d.c / nullif(d.n, 0) AS rate_term,
                         w.weight ** 2 * d.c / nullif(d.n, 0) ** 2 AS variance_term,
                         w.weight / nullif(d.n, 0) AS weight_per_person
                  FROM ({direct_strata}) d JOIN {REFERENCE_TABLE} w USING ({keys}))
        ), direct AS (
            SELECT region_id, period,
                   CASE WHEN NOT bool_or(undefined) THEN {exact_sum_sql("rate_term", "rate_unit")} END AS std_rate,
                   {exact_sum_sql("variance_term", "variance_unit")} AS std_variance,
                   max(weight_per_person) AS std_max_weight
            FROM direct_terms
            GROUP BY region_id, period
        )
        SELECT t.*, d.std_rate, d.std_variance, d.std_max_weight
        FROM totals t LEFT JOIN direct d USING (region_id, period)
    """


def register_reference(con: duckdb.DuckDBPyConnection, reference: pd.DataFrame) -> str:
    """Store the reference weights as a small DuckDB table; return its name."""
    return create_temp_table(con, REFERENCE_TABLE, reference)

