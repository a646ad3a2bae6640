"""The small demo through both executors: the same tables (public and private), and the time per asset group."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from epiatlas.artifacts import ArtifactStore
from epiatlas.config import load_config
from epiatlas.publish import warehouse_for
from epiatlas.reports.build import Report
from epiatlas.warehouse import Warehouse
from orchestration.jobs import ALL_ASSETS_JOB
from orchestration.runner import RunSummary, job_for_config, run_pipeline, step_groups
from tests.test_pipeline import RUN_STAMPED, _table_hashes

pytestmark = pytest.mark.slow

EXECUTORS = {"multiprocess": False, "in-process": True}


def _copy_without_warehouse(small_demo: Path, out: Path) -> Path:
    """The demo folder copied to `out`, so its config's relative warehouse is a fresh one of its own."""
    source = small_demo.parent
    shutil.copytree(source, out, ignore=lambda folder, names: ["warehouse"] if Path(folder) == source else [])
    config = out / small_demo.name
    assert warehouse_for(load_config(config)).root == out.resolve() / "warehouse"
    return config


@pytest.fixture(scope="module")
def runs(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, RunSummary]]:
    """The small demo run once per executor, each into its own warehouse."""
    done = {}
    for label, in_process in EXECUTORS.items():
        config = _copy_without_warehouse(small_demo, tmp_path_factory.mktemp(label) / "demo")
        summary, _ = run_pipeline(config, in_process=in_process)
        done[label] = (config, summary)
    return done


def _roots(runs: dict[str, tuple[Path, RunSummary]]) -> dict[str, Path]:
    return {label: warehouse_for(load_config(config)).root for label, (config, _) in runs.items()}


def test_both_executors_write_identical_tables(runs: dict[str, tuple[Path, RunSummary]]) -> None:
    hashes = {label: _table_hashes(root / "tables") for label, root in _roots(runs).items()}
    multi, single = hashes["multiprocess"], hashes["in-process"]
    assert len(multi) > 20, "every public and private table (and partition) is compared"
    assert sorted(multi) == sorted(single), "the same tables and partitions"
    differ = sorted(path for path in multi if multi[path] != single[path])
    assert {Path(p).parts[0] for p in differ} <= {RUN_STAMPED}, f"tables differing between the executors: {differ}"


def _report_rows(root: Path) -> pd.DataFrame:
    with Warehouse(root).connect([RUN_STAMPED]) as con:
        return con.table(RUN_STAMPED).df().sort_values(["region_id", "period"], ignore_index=True)


def test_reports_differ_between_executors_only_by_their_run_and_publish_time(
    runs: dict[str, tuple[Path, RunSummary]],
) -> None:
    roots = _roots(runs)
    rows = {label: _report_rows(root) for label, root in roots.items()}
    same = [c for c in rows["multiprocess"].columns if not c.endswith(("sha256", "bytes"))]
    pd.testing.assert_frame_equal(rows["multiprocess"][same], rows["in-process"][same])
    stamps = {label: (summary.run_id, summary.published.info["published_at"]) for label, (_, summary) in runs.items()}
    for row in rows["multiprocess"].itertuples():
        name = Report(row.region_id, row.level, int(row.period), "").artifact_name
        html = {label: ArtifactStore(root / "artifacts").current(name, "html").read_text(encoding="utf-8")
                for label, root in roots.items()}  # fmt: skip
        assert all(stamp in html[label] for label in html for stamp in stamps[label]), f"{name} names its run"
        unstamped = {html[label].replace(stamps[label][0], "<run>").replace(stamps[label][1], "<published>")
                     for label in html}  # fmt: skip
        assert len(unstamped) == 1, f"{name} differs between the executors beyond its run id and publish time"


def test_both_executors_pass_the_same_checks(runs: dict[str, tuple[Path, RunSummary]]) -> None:
    checks = {label: sorted(summary.checks) for label, (_, summary) in runs.items()}
    assert checks["multiprocess"] == checks["in-process"]
    assert runs["multiprocess"][1].failed_checks == []


@pytest.mark.parametrize("label", EXECUTORS)
def test_time_per_group_covers_every_step(runs: dict[str, tuple[Path, RunSummary]], label: str) -> None:
    config, summary = runs[label]
    groups = step_groups(job_for_config(str(config), ALL_ASSETS_JOB))
    times = summary.times
    assert {g.group for g in times.groups} == set(groups.values()) >= {"ingest", "outcomes", "models", "publish"}
    assert sum(g.steps for g in times.groups) == len(groups), "each step counted once"
    assert all(g.wall_s > 0 and g.step_sum_s > 0 for g in times.groups)
    total_steps = sum(g.step_sum_s for g in times.groups)
    assert all(total_steps >= g.step_sum_s for g in times.groups)
    assert all(times.wall_s >= g.wall_s for g in times.groups), "a group's steps lie within the run"
    if label == "in-process":  # one step at a time: a group's span holds its steps (50 ms per step for rounding)
        assert all(g.wall_s >= g.step_sum_s - 0.05 * g.steps for g in times.groups)
    table = times.table().splitlines()
    assert table[0].split() == ["group", "steps", "wall", "s", "step-sum", "s"]
    assert table[-1].split()[:2] == ["total", str(len(groups))]
    assert len(table) == len(times.groups) + 2
