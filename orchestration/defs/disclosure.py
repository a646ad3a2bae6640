"""Outcomes group: the published outcomes and their safe margins (disclosure control), partitioned by period."""

import dagster as dg
import duckdb
import pandas as pd

from epiatlas.config import EpiatlasConfig
from epiatlas.disclosure import AUDIT_COLUMNS, DisclosureResult, differencing_bounds, protect_outcomes
from epiatlas.disclosure.checks import MARGIN_CHECKS, PUBLISHED_CHECKS, margin_checks, published_outcome_checks
from epiatlas.quality import TableCheck
from orchestration.defs.outcomes import PeriodTable, build_period_asset

PRIVATE_INPUTS = ["regions", "region_period_outcomes"]


def _protected(con: duckdb.DuckDBPyConnection, periods: list[int]) -> DisclosureResult:
    """Suppression of the private outcomes of the selected periods."""
    outcomes = con.execute(
        "SELECT * FROM region_period_outcomes WHERE list_contains($periods, period) ORDER BY region_id, period",
        {"periods": periods},
    ).df()
    return protect_outcomes(outcomes, con.execute("SELECT region_id, parent_id FROM regions").df())


def _published(cfg: EpiatlasConfig, con: duckdb.DuckDBPyConnection, periods: list[int]) -> pd.DataFrame:
    result = _protected(con, periods)
    result.table.attrs["metadata"] = result.metadata
    return result.table


def _margins(cfg: EpiatlasConfig, con: duckdb.DuckDBPyConnection, periods: list[int]) -> pd.DataFrame:
    """The margins, with the differencing audit of them and of the stored published_outcomes for the checks."""
    margins = _protected(con, periods).margins
    stored = con.execute(
        "SELECT * FROM published_outcomes WHERE list_contains($periods, period) ORDER BY region_id, period",
        {"periods": periods},
    ).df()
    regions = con.execute("SELECT region_id, parent_id FROM regions").df()
    # Plain records, not a DataFrame: pandas copies and compares attrs as the frame is sliced per period.
    margins.attrs["differencing_bounds"] = differencing_bounds(stored, margins, regions).to_dict("records")
    return margins


def _margin_checks(frame: pd.DataFrame, region_ids: set[str], periods: list[int]) -> list[TableCheck]:
    bounds = pd.DataFrame(frame.attrs["differencing_bounds"], columns=list(AUDIT_COLUMNS))
    return margin_checks(frame, bounds, periods)


def build_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """`published_outcomes` and `published_outcome_margins`, partitioned like region_period_outcomes."""
    partitions = dg.StaticPartitionsDefinition(cfg.periods.keys)
    tables = [
        PeriodTable("published_outcomes", PRIVATE_INPUTS, _published, published_outcome_checks, PUBLISHED_CHECKS),
        PeriodTable(
            "published_outcome_margins",
            [*PRIVATE_INPUTS, "published_outcomes"],
            _margins,
            _margin_checks,
            MARGIN_CHECKS,
        ),
    ]
    return dg.Definitions(assets=[build_period_asset(spec, partitions) for spec in tables])
