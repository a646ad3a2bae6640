"""One pipeline run of the small demo and its reports job, shared by the report tests of a session.

A plugin (`pytest_plugins = ["tests.report_fixtures"]`), so the fixture is defined once and its session scope
shares the run between tests/test_reports.py and tests/test_report_rendering.py.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from epiatlas.config import dump_config, load_config
from epiatlas.publish import warehouse_for
from epiatlas.reports.config import ReportsConfig
from orchestration.definitions import build_definitions
from orchestration.jobs import REPORTS_JOB
from orchestration.runner import run_pipeline


@pytest.fixture(scope="session")
def reports_run(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Pipeline run, then the reports job for the latest period on a suppressed and a visible region."""
    tmp = tmp_path_factory.mktemp("reports")
    base = load_config(small_demo)
    cfg = base.model_copy(update={"warehouse": base.warehouse.model_copy(update={"root": tmp / "wh"})})
    dump_config(cfg, tmp / "config.yaml")
    summary, _ = run_pipeline(tmp / "config.yaml", in_process=True)
    assert summary.failed_checks == [], summary.failed_checks
    latest = cfg.periods.end
    with warehouse_for(cfg).read_catalog() as con:
        published = con.table("published_outcomes").df()
    now = published[published["period"] == latest].sort_values("region_id")
    hidden = now[now["suppression"] == "primary"]["region_id"].iloc[0]
    visible = now[now["suppression"].isna()]["region_id"].iloc[0]
    chosen = cfg.model_copy(update={"reports": ReportsConfig(regions=[hidden, visible])})
    dump_config(chosen, tmp / "config_reports.yaml")
    defs = build_definitions(tmp / "config_reports.yaml")
    result = defs.resolve_job_def(REPORTS_JOB).execute_in_process(
        partition_key=str(latest), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    return {"cfg": chosen, "path": tmp / "config_reports.yaml", "defs": defs, "result": result, "latest": latest,
            "hidden": hidden, "visible": visible}  # fmt: skip
