"""The analyst's path through the real Dagster UI: the webserver and daemon on loopback, a run launched over the
GraphQL API the UI calls, its metadata read back over GraphQL, and the asset graph drawn in headless Chromium."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from epiatlas.config import dump_config, load_config
from epiatlas.publish import warehouse_for
from orchestration.jobs import INGEST_JOB
from tests.ui_driver import DagsterUIError, running_ui, screenshot_asset_graph

pytestmark = pytest.mark.slow
GROUPS = ["imaging", "ingest", "models", "outcomes", "publish", "reports"]
EXPANDED = ["outcomes", "publish", "reports"]  # the groups drawn open; the others are one box each
SHOWN_ASSETS = ["region_profile", "published_outcomes", "catalog", "reports"]


@pytest.fixture
def ui_config(small_demo: Path, tmp_path: Path) -> Path:
    """The small demo's config with a warehouse of its own, so the run touches no other test's tables."""
    cfg = load_config(small_demo)
    config = tmp_path / "config.yaml"
    dump_config(cfg.model_copy(update={"warehouse": cfg.warehouse.model_copy(update={"root": tmp_path / "wh"})}),
                config)  # fmt: skip
    return config


def _is_drawing(png: Path) -> bool:
    """Whether the image holds a drawing rather than one flat colour (a blank or failed page)."""
    image = Image.open(png).convert("RGB")
    counts = sorted(count for count, _ in image.getcolors(maxcolors=image.width * image.height))
    return len(counts) > 50 and counts[-1] < 0.95 * image.width * image.height


def test_a_run_launched_over_graphql_succeeds_and_the_asset_graph_shows_it(ui_config: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with running_ui(ui_config, tmp_path / "dagster_home") as ui:
        run_id = ui.launch(INGEST_JOB)  # queued: the daemon dequeues and launches it
        assert ui.wait_for_run(run_id, timeout_s=240) == "SUCCESS"
        metadata = ui.latest_materialization("census")
        text = screenshot_asset_graph(ui.url, tmp_path / "graph.png", EXPANDED, expect=[*GROUPS, *SHOWN_ASSETS])
    with warehouse_for(load_config(ui_config)).connect(["census"]) as con:
        rows = con.execute("SELECT count(*) FROM census").fetchone()[0]
    assert int(metadata["dagster/row_count"]) == rows > 0
    assert int(metadata["rows_read"]) == rows + int(metadata["rows_quarantined"])
    assert all(name in text for name in [*GROUPS, *SHOWN_ASSETS])
    assert Image.open(tmp_path / "graph.png").size == (1600, 1000) and _is_drawing(tmp_path / "graph.png")
    assert all(process.popen.poll() is not None for process in ui.processes)  # webserver and daemon ended
    print(f"UI test: {time.monotonic() - started:.0f} s")


def test_a_code_location_that_cannot_load_is_reported_with_its_cause(tmp_path: Path) -> None:
    with pytest.raises(DagsterUIError, match=r"did not load.*missing\.yaml"):
        with running_ui(tmp_path / "missing.yaml", tmp_path / "dagster_home", daemon=False):
            pass
