"""Publish group: the analyst catalog as an asset downstream of every other asset.

A run reaches it only when everything upstream succeeded, so a failed run publishes nothing; its
materializations in the UI show when the catalog was published and which tables (with row counts) it holds.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from epiatlas.analyses import AnalysisPlan
from epiatlas.publish import publish_catalog, warehouse_for
from epiatlas.warehouse_lock import WarehouseLock, recorded_holder
from orchestration.metadata import catalog_metadata
from orchestration.resources import EpiatlasResource

GROUP = "publish"
CATALOG_ASSET = "catalog"
# Set by `run_pipeline` on its runs: the token of the warehouse lock it holds for the whole run.
LOCK_TOKEN_TAG = "epiatlas/warehouse_lock"


@contextmanager
def warehouse_lock_for_run(root: Path, run_tags: Mapping[str, str]) -> Iterator[None]:
    """The lock this run's launcher already holds, else the lock taken for this step (UI-launched runs)."""
    holder = recorded_holder(root)
    if holder is not None and holder.token == run_tags.get(LOCK_TOKEN_TAG):
        yield
        return
    with WarehouseLock(root):
        yield


def build_catalog_asset(
    upstream: Sequence[dg.AssetKey], downstream: Sequence[dg.AssetKey], plan: AnalysisPlan
) -> dg.AssetsDefinition:
    """The `catalog` asset, depending on every asset in `upstream`; it publishes the tables of the graph only
    (`upstream` and the `downstream` reports), so a switched-off analysis's earlier tables stay out."""
    tables = sorted(key.to_user_string() for key in (*upstream, *downstream))
    off = [str(a) for a in plan.analyses if not a.on]

    @dg.asset(
        name=CATALOG_ASSET,
        group_name=GROUP,
        deps=list(upstream),
        kinds={"duckdb"},
        description="catalog.duckdb: a self-contained snapshot of every public table plus the tables of sql/views/, "
        "swapped in atomically; analysts open it read-only without file-system access."
        + (f"\n\nAnalyses off for this configuration: {'; '.join(off)}." if off else ""),
    )
    def _catalog(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        cfg = epiatlas.settings()
        with warehouse_lock_for_run(warehouse_for(cfg).root, context.run.tags):
            published = publish_catalog(cfg, tables, {"analyses": plan.summary()})
        context.log.info(f"published {len(published.tables)} tables to {published.path}")
        return dg.MaterializeResult(metadata=catalog_metadata(published))

    return _catalog


def build_defs(upstream: Sequence[dg.AssetKey], downstream: Sequence[dg.AssetKey], plan: AnalysisPlan) -> dg.Definitions:
    return dg.Definitions(assets=[build_catalog_asset(upstream, downstream, plan)])
