"""Outcomes group: region x period outcomes and pollutant exposure, partitioned by period (year)."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb
import pandas as pd

from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import Contract, load_contract
from epiatlas.outcomes.exposure import pollutant_exposure
from epiatlas.outcomes.region_period import region_period_outcomes, region_period_outcomes_from_counts
from epiatlas.publish import warehouse_for
from epiatlas.quality import TableCheck, exposure_checks, region_period_checks
from orchestration.defs.contract_checks import contract_check_results, contract_check_specs
from orchestration.metadata import table_metadata
from orchestration.resources import EpiatlasResource

GROUP = "outcomes"
# Single-run backfills are what let a multi-year run compute every year in one pass; the API is stable
# enough for us, so its "beta" notice is silenced here rather than printed once per step process.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
OUTCOME_CHECKS = {
    "every_region_present": "every region has a row in every materialized period",
    "population_positive": "population > 0 where known",
    "cases_within_population": "cases <= population",
    "expected_positive": "expected_cases > 0",
}
EXPOSURE_CHECKS = {
    "every_region_present": "every region has a row per period and pollutant",
    "completeness_is_share": "completeness lies in [0, 1]",
    "no_invented_values": "regions with no station in range carry NULL exposure, never an invented value",
}

Compute = Callable[[EpiatlasConfig, duckdb.DuckDBPyConnection, list[int]], pd.DataFrame]
Checks = Callable[[pd.DataFrame, set[str], list[int]], list[TableCheck]]


@dataclass(frozen=True)
class PeriodTable:
    """A period-partitioned output: its inputs, how it is computed and how it is checked."""

    table: str
    inputs: list[str]
    compute: Compute
    checks: Checks
    check_descriptions: dict[str, str]


def _store_partitions(
    context: dg.AssetExecutionContext, epiatlas: EpiatlasResource, spec: PeriodTable, contract: Contract
) -> dg.MaterializeResult:
    """Compute the selected periods in one pass, write one Parquet partition per period, report checks.

    Each period's materialization carries its own row count and period; what holds for the run as a whole
    (dropped partitions, the computation's own metadata) is reported on all of them.
    """
    cfg = epiatlas.settings()
    warehouse = warehouse_for(cfg)
    periods = sorted(int(k) for k in context.partition_keys)
    with warehouse.connect(spec.inputs) as con:
        frame = spec.compute(cfg, con, periods)
        region_ids = {r[0] for r in con.execute("SELECT region_id FROM regions").fetchall()}
    for p in periods:
        written = warehouse.write_frame(spec.table, frame[frame["period"] == p], partition=("period", str(p)))
        context.add_asset_metadata({**table_metadata(contract, written), "period": p}, partition_key=str(p))
    dropped = warehouse.drop_partitions_except(spec.table, cfg.periods.keys)
    extra = {k: str(v) for k, v in frame.attrs.get("metadata", {}).items()}
    return dg.MaterializeResult(
        metadata={
            "periods_in_run": ", ".join(map(str, periods)),
            "dropped_partitions": ", ".join(dropped) or "none",
            **extra,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=v.name, passed=v.passed, description=v.message, metadata={"failing_rows": v.failing_rows}
            )
            for v in spec.checks(frame, region_ids, periods)
        ]
        + contract_check_results(warehouse, contract),
    )


def build_period_asset(spec: PeriodTable, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The asset for one period-partitioned table; a multi-period run computes all its periods at once."""
    contract = load_contract(spec.table)

    @dg.asset(
        name=spec.table,
        group_name=GROUP,
        description=contract.description,
        deps=spec.inputs,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "parquet"},
        tags={"privacy": contract.privacy},
        check_specs=[
            *(dg.AssetCheckSpec(name, asset=spec.table, description=text) for name, text in spec.check_descriptions.items()),
            *contract_check_specs(contract),
        ],
    )
    def _asset(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        return _store_partitions(context, epiatlas, spec, contract)

    return _asset


def _outcomes_from_records(cfg: EpiatlasConfig, con: duckdb.DuckDBPyConnection, periods: list[int]) -> pd.DataFrame:
    return region_period_outcomes(con, cfg.outcomes, periods)


def _outcomes_from_counts(cfg: EpiatlasConfig, con: duckdb.DuckDBPyConnection, periods: list[int]) -> pd.DataFrame:
    return region_period_outcomes_from_counts(con, cfg.outcomes, periods, undated_period=cfg.periods.end)


def _exposure(cfg: EpiatlasConfig, con: duckdb.DuckDBPyConnection, periods: list[int]) -> pd.DataFrame:
    return pollutant_exposure(con, cfg.exposure, periods)


def period_tables(cfg: EpiatlasConfig) -> list[PeriodTable]:
    """The outcome tables this configuration can build: from records or from aggregated counts; exposure."""
    records = cfg.sources.hospitalizations is not None
    tables = [
        PeriodTable(
            "region_period_outcomes",
            ["regions", "hospitalizations", "census"] if records else ["regions", "hospitalization_counts"],
            _outcomes_from_records if records else _outcomes_from_counts,
            region_period_checks,
            OUTCOME_CHECKS,
        )
    ]
    if cfg.sources.pollutant_readings is not None:
        tables.append(
            PeriodTable(
                "pollutant_exposure",
                ["regions", "pollutant_stations", "pollutant_readings"],
                _exposure,
                exposure_checks,
                EXPOSURE_CHECKS,
            )
        )
    return tables


def build_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """Partitioned outcome assets for this configuration."""
    partitions = dg.StaticPartitionsDefinition(cfg.periods.keys)
    return dg.Definitions(assets=[build_period_asset(spec, partitions) for spec in period_tables(cfg)])
