"""Publishing: after every successful run, rebuild the analyst catalog and swap it in atomically."""

import dagster as dg

from epiatlas.publish import publish_catalog
from orchestration.resources import EpiatlasResource


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="publish_catalog_on_success",
    description="Rebuilds catalog.duckdb (views over the public tables and sql/views/) when a run succeeds; "
    "readers holding the old catalog keep working.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
)
def publish_catalog_on_success(context: dg.RunStatusSensorContext, epiatlas: EpiatlasResource) -> dg.SkipReason:
    published = publish_catalog(epiatlas.settings())
    message = f"published {len(published.views)} views to {published.path} after run {context.dagster_run.run_id}"
    if published.skipped_views:
        message += f"; not yet available: {', '.join(published.skipped_views)}"
    context.log.info(message)
    return dg.SkipReason(message)


def build_defs() -> dg.Definitions:
    return dg.Definitions(sensors=[publish_catalog_on_success])
