"""Jobs an analyst launches from the UI (one per concern), and the whole refresh the CLI runs."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from epiatlas.analyses import AnalysisPlan

INGEST_JOB = "ingest_job"
OUTCOMES_JOB = "outcomes_job"
ALL_ASSETS_JOB = "all_assets_job"
MODELS_JOB = "models_job"
IMAGING_JOB = "imaging_job"
REPORTS_JOB = "reports_job"
REPORTS_ASSET = "reports"
INGEST_GROUPS = ("ingest",)
OUTCOMES_GROUPS = ("outcomes",)  # the disclosure assets (published outcomes and margins) are in this group too
MODELS_GROUPS = ("models",)
IMAGING_GROUPS = ("imaging",)


def partition_range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that run a partitioned job over `keys` (first to last) in one run, as `epiatlas run` does."""
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def build_jobs(groups: set[str], plan: AnalysisPlan) -> list[dg.UnresolvedAssetJobDefinition]:
    """One job per concern whose asset group exists (ingest, outcomes, models, imaging, reports) and the whole
    refresh (every asset); the refresh's description says which analyses are off and why."""
    off = [str(a) for a in plan.analyses if not a.on]
    jobs = [
        dg.define_asset_job(
            INGEST_JOB,
            selection=dg.AssetSelection.groups(*INGEST_GROUPS),
            description="Validate every source and covariate table against its contract and stage it, quarantining "
            "rejected rows. Launch it when a source file changes, to see the quarantine before anything downstream.",
        ),
        dg.define_asset_job(
            OUTCOMES_JOB,
            selection=dg.AssetSelection.groups(*OUTCOMES_GROUPS),
            description="Count cases per region and period, compute expected counts, SHR with CI and exposures, and "
            "apply disclosure control to the published outcomes and margins. Launch it over one period or a range "
            "after ingest_job, or when the case definitions or suppression settings change.",
        ),
        dg.define_asset_job(
            MODELS_JOB,
            selection=dg.AssetSelection.groups(*MODELS_GROUPS),
            description="Refit the socioeconomic indices, the count models (GLM and gradient boosting), their SHAP "
            "explanations and figures from the stored tables. Launch it after outcomes_job or a change of model "
            "settings; it reads no source file.",
        ),
        dg.define_asset_job(
            IMAGING_JOB,
            selection=dg.AssetSelection.groups(*IMAGING_GROUPS),
            description="Validate the CXR images, train (or load the stored) classifier, predict, evaluate, explain "
            "with Grad-CAM and summarise per region. Launch it when the images or the imaging settings change.",
        ),
        dg.define_asset_job(
            REPORTS_JOB,
            selection=dg.AssetSelection.assets(REPORTS_ASSET),
            description="Write the regional and national HTML reports of a period from the published catalog. "
            "Run by reports_schedule for the latest period; launch it for any period after a refresh.",
        ),
        dg.define_asset_job(
            ALL_ASSETS_JOB,
            selection=dg.AssetSelection.all(),
            description="The whole refresh: every asset, the catalog and the reports. Launch it over the full range "
            "of periods after new data arrives (`epiatlas run` runs this job); a failed step publishes nothing "
            "(`epiatlas publish --partial` then publishes what succeeded). "
            + (f"Analyses off for this configuration: {'; '.join(off)}." if off else "Every analysis is on."),
        ),
    ]
    job_groups = {MODELS_JOB: MODELS_GROUPS, IMAGING_JOB: IMAGING_GROUPS}
    return [j for j in jobs if not set(job_groups.get(j.name, ())) - groups]
