"""Outcomes group: region x period outcomes and pollutant exposure, partitioned by period (year)."""


from collections.abc import Callable

import dagster as dg
import pandas as pd

from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import load_contract
from epiatlas.outcomes.exposure import pollutant_exposure
from epiatlas.outcomes.region_period import region_period_outcomes, region_period_outcomes_from_counts
from epiatlas.quality import TableCheck, exposure_checks, region_period_checks
from epiatlas.warehouse import Warehouse
from orchestration.metadata import table_metadata
from orchestration.resources import EpiatlasResource

GROUP = "outcomes"
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

Compute = Callable[[EpiatlasConfig, object, list[int]], pd.DataFrame]


def _store_partitions(
    context: dg.AssetExecutionContext,
    epiatlas: EpiatlasResource,
    table: str,
    inputs: list[str],
    compute: Compute,
    checks: Callable[[pd.DataFrame, set[str], list[int]], list[TableCheck]],
) -> dg.MaterializeResult:
    """Compute the selected periods in one pass, write one Parquet partition per period, report checks."""
    cfg = epiatlas.settings()
    warehouse: Warehouse = epiatlas.warehouse()
    periods = sorted(int(k) for k in context.partition_keys)
    with warehouse.connect(inputs) as con:
        frame = compute(cfg, con, periods)
        region_ids = {r[0] for r in con.execute("SELECT region_id FROM regions").fetchall()}
    written = [warehouse.write_frame(table, frame[frame["period"] == p], partition=("period", str(p))) for p in periods]
    verdicts = checks(frame, region_ids, periods)
    extra = {k: str(v) for k, v in frame.attrs.get("metadata", {}).items()}
    return dg.MaterializeResult(
        metadata={**table_metadata(load_contract(table), *written), "periods": ", ".join(map(str, periods)), **extra},
        check_results=[
            dg.AssetCheckResult(
                check_name=v.name, passed=v.passed, description=v.message, metadata={"failing_rows": v.failing_rows}
            )
            for v in verdicts
        ],
    )


def _specs(table: str, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=table, description=text) for name, text in checks.items()]


def build_region_period_outcomes(cfg: EpiatlasConfig, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Outcomes from record-level hospitalizations + census, or from aggregated counts."""
    table = "region_period_outcomes"
    records = cfg.sources.hospitalizations is not None
    inputs = ["regions", "hospitalizations", "census"] if records else ["regions", "hospitalization_counts"]

    def compute(settings: EpiatlasConfig, con, periods: list[int]) -> pd.DataFrame:
        if records:
            return region_period_outcomes(con, settings.outcomes, periods)
        return region_period_outcomes_from_counts(con, settings.outcomes, periods, undated_period=settings.periods.end)

    @dg.asset(
        name=table,
        group_name=GROUP,
        description=load_contract(table).description,
        deps=inputs,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "parquet"},
        tags={"privacy": "private"},
        check_specs=_specs(table, OUTCOME_CHECKS),
    )
    def _asset(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        return _store_partitions(context, epiatlas, table, inputs, compute, region_period_checks)

    return _asset


def build_pollutant_exposure(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Pollutant exposure per region, period and pollutant from station readings."""
    table = "pollutant_exposure"
    inputs = ["regions", "pollutant_stations", "pollutant_readings"]

    @dg.asset(
        name=table,
        group_name=GROUP,
        description=load_contract(table).description,
        deps=inputs,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "parquet"},
        check_specs=_specs(table, EXPOSURE_CHECKS),
    )
    def _asset(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        return _store_partitions(
            context, epiatlas, table, inputs, lambda s, con, p: pollutant_exposure(con, s.exposure, p), exposure_checks
        )

    return _asset


def build_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """Partitioned outcome assets for this configuration."""
    partitions = dg.StaticPartitionsDefinition(cfg.periods.keys)
    assets = [build_region_period_outcomes(cfg, partitions)]
    if cfg.sources.pollutant_readings is not None:
        assets.append(build_pollutant_exposure(partitions))
    return dg.Definitions(assets=assets)
