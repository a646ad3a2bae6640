"""Ingest group: one asset per configured source, validated against its contract, plus the quarantine summary."""

from collections.abc import Callable

import dagster as dg
import duckdb

from epiatlas.analyses import AnalysisPlan
from epiatlas.config import EpiatlasConfig, SourceConfig
from epiatlas.contracts import Contract, load_contract
from epiatlas.contracts.checks import referenced_tables
from epiatlas.covariates.source import covariate_table
from epiatlas.imaging.pipeline import QUARANTINE_SOURCE
from epiatlas.ingest import ingest_source
from epiatlas.publish import warehouse_for
from epiatlas.quality import REGIONS_CHECK, Reconciliation, TableCheck, regions_kept_check
from orchestration.defs.contract_checks import contract_check_results, contract_check_specs
from orchestration.metadata import table_metadata
from orchestration.resources import EpiatlasResource

GROUP = "ingest"
RECONCILE_CHECK = "rows_reconcile"
# Inputs a source needs beyond its contract's foreign keys (stations are placed in regions by geometry).
EXTRA_INPUTS: dict[str, tuple[str, ...]] = {"pollutant_stations": ("regions",)}


def ingest_inputs(source: str, contract: Contract) -> tuple[str, ...]:
    """Tables that must be stored before `source` can be validated (foreign keys, spatial joins)."""
    return tuple(sorted((set(referenced_tables(contract)) | set(EXTRA_INPUTS.get(source, ()))) - {source}))


def _regions_gate(con: duckdb.DuckDBPyConnection, quarantine: str, rows_read: int, max_share: float) -> TableCheck:
    """The regions gate over the rejected rows of the regions ingest (examples: file, row and rule)."""
    rejected = con.execute(
        f"SELECT file, row_number, message FROM {quarantine} WHERE action = 'rejected' ORDER BY file, row_number"
    ).fetchall()
    examples = [f"{file} row {row}: {message}" for file, row, message in rejected[:5]]
    return regions_kept_check(rows_read, len(rejected), max_share, examples)


def _regions_check_specs(source: str) -> list[dg.AssetCheckSpec]:
    """The blocking regions gate, on the regions asset only."""
    if source != "regions":
        return []
    return [dg.AssetCheckSpec(REGIONS_CHECK, asset=source, blocking=True,
                              description="no boundary row is rejected (at most quality.max_region_reject_share), "
                              "because every record of a lost region is lost with it")]


def build_ingest_asset(source: str, contract: Contract | None = None,
                       settings: Callable[[EpiatlasConfig], SourceConfig] | None = None) -> dg.AssetsDefinition:
    """The asset that validates one source file and stores accepted rows and quarantined rows.

    `contract` defaults to `data_contracts/<source>.yaml`; `settings` picks the source's settings out of the
    run's config (default: sources.<source>).
    """
    contract = contract or load_contract(source)
    pick = settings or (lambda cfg: getattr(cfg.sources, source))
    inputs = ingest_inputs(source, contract)

    @dg.asset(
        name=source,
        group_name=GROUP,
        description=f"{contract.description}\n\nValidated against the `{source}` contract; "
        "rows that break a rule go to `quarantine`.",
        deps=list(inputs),
        kinds={"duckdb", "parquet"},
        tags={"privacy": contract.privacy},
        check_specs=[
            dg.AssetCheckSpec(
                RECONCILE_CHECK,
                asset=source,
                blocking=True,
                description="rows read = rows accepted + rows quarantined, and the quarantined share "
                "is at most quality.max_reject_share",
            ),
            *_regions_check_specs(source),
            *contract_check_specs(contract),
        ],
    )
    def _ingest(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        cfg = epiatlas.settings()
        warehouse = warehouse_for(cfg)
        with warehouse.connect(inputs) as con:
            result = ingest_source(con, source, pick(cfg), contract)
            written = warehouse.write_table(con, source, f"SELECT * FROM {result.accepted_table}")
            quarantined = warehouse.write_table(
                con, "quarantine", f"SELECT * FROM {result.quarantine_table}", partition=("source", source)
            )
            gates = [_regions_gate(con, result.quarantine_table, result.rows_read,
                                   cfg.quality.max_region_reject_share)] if source == "regions" else []
        rejected = quarantined.rows - result.rows_repaired
        rec = Reconciliation(source, result.rows_read, written.rows, rejected, cfg.quality.max_reject_share)
        context.log.info(rec.message)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(contract, written),
                "source_file": dg.MetadataValue.path(str(result.file)),
                "rows_read": rec.rows_read,
                "rows_quarantined": rec.rows_quarantined,
                "rows_repaired": result.rows_repaired,
                "reject_share": rec.reject_share,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=RECONCILE_CHECK,
                    passed=rec.passed,
                    description=rec.message,
                    metadata={
                        "rows_read": rec.rows_read,
                        "rows_accepted": rec.rows_accepted,
                        "rows_quarantined": rec.rows_quarantined,
                        "reject_share": rec.reject_share,
                        "max_reject_share": rec.max_reject_share,
                    },
                ),
                *(dg.AssetCheckResult(check_name=g.name, passed=g.passed, description=g.message,
                                      metadata={"rows_rejected": g.failing_rows}) for g in gates),
                *contract_check_results(warehouse, contract),
            ],
        )

    return _ingest


def build_quarantine_summary(sources: list[str]) -> dg.AssetsDefinition:
    """Public counts of quarantined rows per source and rule; the rows themselves stay private."""
    contract = load_contract("quarantine_summary")

    @dg.asset(
        name="quarantine_summary",
        group_name=GROUP,
        description=contract.description,
        deps=sources,
        kinds={"duckdb", "parquet"},
        check_specs=contract_check_specs(contract),
    )
    def _summary(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        warehouse = epiatlas.warehouse()
        warehouse.drop_partitions_except("quarantine", sources)  # sources no longer configured
        with warehouse.connect(["quarantine"]) as con:
            written = warehouse.write_table(
                con,
                "quarantine_summary",
                "SELECT source, action, columns, rules, count(*) AS rows FROM quarantine GROUP BY ALL ORDER BY ALL",
            )
        return dg.MaterializeResult(
            metadata=table_metadata(contract, written), check_results=contract_check_results(warehouse, contract)
        )

    return _summary


def build_defs(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dg.Definitions:
    """Assets (with their checks) for the sources this configuration has."""
    sources = list(cfg.sources.configured())
    covariates = [covariate_table(name) for name in cfg.covariates]  # their assets: orchestration.defs.covariates
    images = [QUARANTINE_SOURCE] if plan.imaging.on else []  # written by orchestration.defs.imaging
    summary = build_quarantine_summary(sources + covariates + images)
    return dg.Definitions(assets=[build_ingest_asset(s) for s in sources] + [summary])
