"""Jobs an analyst launches from the UI, and the one the CLI runs."""

from __future__ import annotations

import dagster as dg

INGEST_JOB = "ingest_job"
ALL_ASSETS_JOB = "all_assets_job"
MODELS_JOB = "models_job"
IMAGING_JOB = "imaging_job"


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """Ingest only, the models only, the imaging only, and everything (the period-partitioned assets over a partition range)."""
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
            ALL_ASSETS_JOB,
            selection=dg.AssetSelection.all(),
            description="Every asset; launch it over a range of periods to refresh the analysis.",
        ),
    ]
