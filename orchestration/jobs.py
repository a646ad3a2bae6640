"""Jobs an analyst launches from the UI, and the one the CLI runs."""

from __future__ import annotations

import dagster as dg

INGEST_JOB = "ingest_job"
ALL_ASSETS_JOB = "all_assets_job"
MODELS_JOB = "models_job"
IMAGING_JOB = "imaging_job"
REPORTS_JOB = "reports_job"
REPORTS_ASSET = "reports"


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """Ingest only, the models only, the imaging only, the reports only, and everything but the reports (the
    period-partitioned assets over a partition range)."""
    return [
        dg.define_asset_job(
            INGEST_JOB, selection=dg.AssetSelection.groups("ingest"), description="Validate and stage every source."
        ),
        dg.define_asset_job(
            MODELS_JOB,
            selection=dg.AssetSelection.groups("models"),
            description="Refit the indices, the count models and their explanations and figures from stored tables.",
        ),
        dg.define_asset_job(
            IMAGING_JOB,
            selection=dg.AssetSelection.groups("imaging"),
            description="Validate the CXR images, train (or load) the classifier, predict, explain and summarise.",
        ),
        dg.define_asset_job(
            REPORTS_JOB,
            selection=dg.AssetSelection.assets(REPORTS_ASSET),
            description="Write the regional HTML reports of a period from the published catalog "
            "(run by reports_schedule).",
        ),
        dg.define_asset_job(
            ALL_ASSETS_JOB,
            selection=dg.AssetSelection.all() - dg.AssetSelection.assets(REPORTS_ASSET),
            description="Every asset but the reports (reports_job writes them); launch it over a range of periods to "
            "refresh the analysis.",
        ),
    ]
