"""Reports group: the `region_profile` mart (published in the catalog) and the regional HTML reports (read from it).

`region_profile` is upstream of the catalog like every table it publishes; the `reports` asset is downstream of
the catalog, reads only the published catalog, and is partitioned by period. Thin assets over `epiatlas.reports`.
"""

import dagster as dg

from epiatlas.artifacts import ArtifactStore
from epiatlas.analyses import AnalysisPlan
from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import Contract, load_contract
from epiatlas.contracts.conform import conformed_select, write_conformed
from epiatlas.reports.build import FigureCache, build_reports
from epiatlas.reports.html import external_references
from epiatlas.reports.inputs import NATIONAL, read_catalog_data
from epiatlas.reports.output import BackgroundRenderer, StoredReport, report_rows
from epiatlas.warehouse import Warehouse, WrittenTable
from epiatlas.reports.profile import region_profile, revealed_cells
from orchestration.defs.contract_checks import contract_check_results, contract_check_specs
from orchestration.defs.publish import CATALOG_ASSET
from orchestration.jobs import REPORTS_ASSET, REPORTS_JOB
from orchestration.metadata import table_metadata
from orchestration.resources import EpiatlasResource

GROUP = "reports"
PROFILE = "region_profile"
REPORTS = REPORTS_ASSET
NOTHING_HIDDEN_REVEALED = "shows_only_what_published_outcomes_shows"
SELF_CONTAINED = "reports_self_contained"
RENDER = "reports_render"


def _profile_inputs(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dict[str, str | None]:
    """Stored table feeding each optional argument of `region_profile`, None when this config has no such table."""
    models = plan.count_models.on
    return {
        "indices": "socioeconomic_indices" if plan.indices.on else None,
        "exposure": "pollutant_exposure" if cfg.sources.pollutant_readings is not None else None,
        "predictions": "model_predictions" if models else None,
        "drivers": "region_drivers" if models else None,
        "imaging": "cxr_region_summary" if plan.imaging.on else None,
    }


def build_profile_asset(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dg.AssetsDefinition:
    """The region_profile mart, from public tables only, with its contract checks and the disclosure check."""
    optional = {arg: table for arg, table in _profile_inputs(cfg, plan).items() if table}
    inputs = ["published_outcomes", "regions", *optional.values()]
    contract = load_contract(PROFILE)

    @dg.asset(
        name=PROFILE,
        group_name=GROUP,
        deps=inputs,
        description=contract.description,
        kinds={"python", "parquet"},
        tags={"privacy": contract.privacy},
        check_specs=[
            *contract_check_specs(contract),
            dg.AssetCheckSpec(NOTHING_HIDDEN_REVEALED, asset=PROFILE,
                              description="every outcome cell equals published_outcomes (hidden cells blank) and no "
                                          "residual is shown where the count is hidden"),
        ],  # fmt: skip
    )
    def _profile(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        warehouse = epiatlas.warehouse()
        with warehouse.connect(inputs) as con:
            tables = {t: con.table(t).df() for t in inputs}
        published = tables["published_outcomes"]
        profile = region_profile(published, tables["regions"], **{arg: tables[t] for arg, t in optional.items()})
        written = write_conformed(warehouse, contract, profile)
        with warehouse.connect([PROFILE]) as con:
            revealed = revealed_cells(con.table(PROFILE).df(), published)
        check = dg.AssetCheckResult(
            check_name=NOTHING_HIDDEN_REVEALED, passed=revealed.empty,
            description=f"{len(revealed)} region-periods differ from published_outcomes",
            metadata={"failing_rows": len(revealed), "examples": str(revealed.head(5).to_dict("records"))},
        )  # fmt: skip
        return dg.MaterializeResult(
            metadata={**table_metadata(contract, written), "suppressed_rows": int(profile["suppressed"].sum()),
                      "inputs": ", ".join(inputs)},
            check_results=[*contract_check_results(warehouse, contract), check],
        )  # fmt: skip

    return _profile


def build_profile_defs(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dg.Definitions:
    """The mart, upstream of the catalog (it is one of the tables the catalog publishes)."""
    return dg.Definitions(assets=[build_profile_asset(cfg, plan)])


def build_reports_asset(cfg: EpiatlasConfig) -> dg.AssetsDefinition:
    """HTML reports (and their PDFs) per period from the published catalog, each loaded in headless Chromium,
    stored as public artifacts and listed in `reports`."""
    contract = load_contract(REPORTS)

    @dg.asset(
        name=REPORTS,
        group_name=GROUP,
        deps=[CATALOG_ASSET],
        partitions_def=dg.StaticPartitionsDefinition(cfg.periods.keys),
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=f"{contract.description}\n\nSettings: `reports:` in the config (level, regions, cron, enabled, "
                    "pdf).",
        kinds={"html", "parquet"},
        tags={"privacy": contract.privacy},
        check_specs=[
            *contract_check_specs(contract),
            dg.AssetCheckSpec(SELF_CONTAINED, asset=REPORTS,
                              description="no report references anything but data: URIs (no request when opened)"),
            dg.AssetCheckSpec(RENDER, asset=REPORTS,
                              description="every report loaded in headless Chromium shows no broken image, console "
                                          "or page error, and makes no outside request"),
        ],  # fmt: skip
    )
    def _reports(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        cfg = epiatlas.settings()
        warehouse = epiatlas.warehouse()
        with warehouse.read_catalog() as con:
            data = read_catalog_data(con)
        store = ArtifactStore(warehouse.root / "artifacts")
        external: list[str] = []
        problems: list[str] = []
        cache: FigureCache = {}  # figures spanning all periods, drawn once for the run's partitions
        with BackgroundRenderer(store, cfg.reports.pdf) as renderer:
            for key in sorted(context.partition_keys):
                pending = [renderer.submit(r) for r in build_reports(data, int(key), cfg.reports.level,
                                                                     cfg.reports.regions, context.run.run_id, cache)]
                stored = [p.result() for p in pending]
                reports = [s.report for s in stored]
                external += [f"{r.artifact_name}: {ref}" for r in reports for ref in external_references(r.html)]
                problems += [f"{s.report.artifact_name}: {p}" for s in stored for p in s.problems]
                written = _write_period(warehouse, contract, key, stored)
                national = next(s for s in stored if s.report.level == NATIONAL)
                context.add_asset_metadata({**table_metadata(contract, written), "period": int(key),
                                            **_national_paths(national)}, partition_key=key)  # fmt: skip
                context.log.info(f"period {key}: {len(reports)} reports under {store.root}")
        checks = [_check(SELF_CONTAINED, external, "external references"), _check(RENDER, problems, "problems")]
        return dg.MaterializeResult(check_results=[*contract_check_results(warehouse, contract), *checks])

    return _reports


def _write_period(warehouse: Warehouse, contract: Contract, key: str, stored: list[StoredReport]) -> WrittenTable:
    """Replace the `reports` rows of period `key`."""
    with warehouse.connect(()) as con:
        con.register("_frame", report_rows(stored))
        return warehouse.write_table(con, REPORTS, conformed_select(contract, "_frame"), partition=("period", key))


def _national_paths(national: StoredReport) -> dict[str, dg.MetadataValue]:
    """Where the national summary's HTML (and PDF) lie, for the asset's metadata."""
    paths = {"national_summary": national.html.path, "national_pdf": national.pdf.path if national.pdf else None}
    return {k: dg.MetadataValue.path(str(p)) for k, p in paths.items() if p is not None}


def _check(name: str, failures: list[str], what: str) -> dg.AssetCheckResult:
    """A check that passes without `failures`, listing the first few."""
    return dg.AssetCheckResult(check_name=name, passed=not failures, description=f"{len(failures)} {what}",
                               metadata={"failing_rows": len(failures), "examples": str(failures[:5])})  # fmt: skip


def reports_schedule(cfg: EpiatlasConfig) -> dg.ScheduleDefinition:
    """The latest period's reports at the `reports.cron` cadence (running by default when `reports.enabled`)."""
    latest = cfg.periods.keys[-1]

    @dg.schedule(
        name="reports_schedule",
        cron_schedule=cfg.reports.cron,
        job_name=REPORTS_JOB,
        default_status=dg.DefaultScheduleStatus.RUNNING if cfg.reports.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Writes the reports of the latest period ({latest}) from the published catalog.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(run_key=f"reports-{latest}-{tick}", partition_key=latest)

    return _schedule


def build_report_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """The reports asset and its schedule, downstream of the catalog (never among its upstream assets)."""
    return dg.Definitions(assets=[build_reports_asset(cfg)], schedules=[reports_schedule(cfg)])
