"""The Dagster code location: `dagster dev -m orchestration.definitions`.

The epiatlas YAML config named by `EPIATLAS_CONFIG` (default: the generated demo's) decides which
sources exist and which periods partition the analysis assets; the UI can point the `epiatlas`
resource at another file with the same layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from epiatlas.analyses import analysis_plan
from epiatlas.config import load_config
from orchestration.defs import covariates, disclosure, imaging, ingest, models, outcomes, publish, reports
from orchestration.jobs import build_jobs
from orchestration.resources import EpiatlasResource

# Steps run in parallel processes forked from a server that has already imported the code location,
# so each step starts in milliseconds instead of re-importing dagster, duckdb and geopandas.
EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}}}
)
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "demo_data" / "config.yaml"
# The team that owns (answers for) each asset group, shown as the assets' owners in the UI.
GROUP_OWNERS = {
    "ingest": "team:data-engineering",  # the sources and the user's covariate tables
    "outcomes": "team:data-engineering",  # outcomes, exposures and their disclosure control
    "publish": "team:data-engineering",
    "models": "team:epidemiology",
    "reports": "team:epidemiology",
    "imaging": "team:radiology-ai",
}


def config_path_from_env() -> Path:
    """The config file this code location serves."""
    return Path(os.environ.get("EPIATLAS_CONFIG", DEFAULT_CONFIG)).resolve()


def asset_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Every asset key the definitions declare (without resolving them, which needs resources)."""
    assets = defs.assets or []
    return sorted({key for a in assets for key in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])})


def group_names(defs: dg.Definitions) -> set[str]:
    """The asset groups that hold at least one asset of the definitions."""
    return {
        group for a in defs.assets or []
        for group in (a.group_names_by_key.values() if isinstance(a, dg.AssetsDefinition) else [a.group_name])
    }  # fmt: skip


def with_group_owner(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The asset spec with its group's team among its owners."""
    team = GROUP_OWNERS.get(spec.group_name or "")
    if team is None:
        raise dg.DagsterInvalidDefinitionError(
            f"asset {spec.key.to_user_string()} is in group {spec.group_name!r}, which has no owning team: "
            "add the group to GROUP_OWNERS in orchestration/definitions.py"
        )
    return spec if team in spec.owners else spec.merge_attributes(owners=[team])


def build_definitions(config_path: Path) -> dg.Definitions:
    """All asset groups with their checks and owners, the catalog downstream of all of them, and the jobs, for one
    config file."""
    cfg = load_config(config_path)
    plan = analysis_plan(cfg)
    groups = dg.Definitions.merge(
        ingest.build_defs(cfg, plan), outcomes.build_defs(cfg), disclosure.build_defs(cfg),
        covariates.build_defs(cfg), models.build_defs(cfg, plan), imaging.build_defs(cfg, plan),
        reports.build_profile_defs(cfg, plan),
    )
    reporting = reports.build_report_defs(cfg)  # downstream of the catalog, so not among its upstream assets
    merged = dg.Definitions.merge(groups, publish.build_defs(asset_keys(groups), asset_keys(reporting), plan), reporting)
    return dg.Definitions(
        assets=dg.map_asset_specs(with_group_owner, merged.assets or []),
        asset_checks=merged.asset_checks,
        schedules=merged.schedules,
        sensors=merged.sensors,
        jobs=build_jobs(group_names(merged), plan),
        executor=EXECUTOR,
        resources={"epiatlas": EpiatlasResource(config_path=str(config_path), graph_config_path=str(config_path))},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(config_path_from_env())
