"""`epiatlas demo` as a user runs it: a line per generation stage and per finished step, the steps' own messages,
the time per asset group, and where the reports are, on the console of every process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from epiatlas.config import load_config
from orchestration.jobs import ALL_ASSETS_JOB
from orchestration.runner import job_for_config, step_groups

pytestmark = pytest.mark.slow

STAGE = re.compile(r"^ +(\d+\.\d) s  (.+)$")
STEP = re.compile(r"^\[ *(\d+)/(\d+)\] ([\w+]+): (\w+) done in (\d+\.\d) s$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """`epiatlas demo --small` in a subprocess (no DAGSTER_HOME: a temporary instance), its config and output."""
    out = tmp_path_factory.mktemp("cli") / "demo"
    done = subprocess.run([sys.executable, "-m", "epiatlas.cli.main", "demo", "--small", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "config.yaml", done.stdout.splitlines()


def test_generation_prints_each_stage_with_elapsed_seconds(demo: tuple[Path, list[str]]) -> None:
    _, lines = demo
    stages = [(float(m[1]), m[2]) for line in lines if (m := STAGE.match(line))]
    assert len(stages) >= 5
    seconds = [s for s, _ in stages]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    assert "config.yaml" in stages[-1][1]


def test_run_prints_one_numbered_line_per_finished_step(demo: tuple[Path, list[str]]) -> None:
    config, lines = demo
    groups = step_groups(job_for_config(str(config), ALL_ASSETS_JOB))
    steps = [m for line in lines if (m := STEP.match(line))]
    assert [int(m[1]) for m in steps] == list(range(1, len(groups) + 1))
    assert {int(m[2]) for m in steps} == {len(groups)}
    assert {m[4]: m[3] for m in steps} == groups, "each step once, under its asset group"
    assert not [line for line in lines if " - DEBUG - " in line], "Dagster's debug events stay out of the console"


def test_steps_own_messages_reach_the_console(demo: tuple[Path, list[str]]) -> None:
    config, lines = demo
    cfg = load_config(config)
    assert any(line.startswith("  cxr_model: epoch 1") for line in lines), "training epochs"
    for period in cfg.periods.keys:
        assert any(line.startswith(f"  reports: period {period}: ") for line in lines), f"reports of {period}"


def test_time_per_group_table_follows_the_run(demo: tuple[Path, list[str]]) -> None:
    config, lines = demo
    groups = set(step_groups(job_for_config(str(config), ALL_ASSETS_JOB)).values())
    start = next(i for i, line in enumerate(lines) if line.split() == ["group", "steps", "wall", "s", "step-sum", "s"])
    rows = [line.split() for line in lines[start + 1 : start + len(groups) + 2]]
    assert {row[0] for row in rows[:-1]} == groups and rows[-1][0] == "total"
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
    assert int(rows[-1][1]) == sum(int(row[1]) for row in rows[:-1])


def test_last_lines_say_where_the_reports_are_and_how_to_browse_and_query(demo: tuple[Path, list[str]]) -> None:
    config, lines = demo
    cfg = load_config(config)
    assert cfg.reports.level == "parent", "the demo writes one report per state (and the national summary)"
    start = next(i for i, line in enumerate(lines) if line.startswith(f"national report {cfg.periods.end} "))
    national = [Path(line.strip()) for line in lines[start + 1 : -2]]
    assert national[0].suffix == ".html" and {p.suffix for p in national[1:]} <= {".pdf"}
    assert all(p.is_file() and p.parent.name == f"report_national_{cfg.periods.end}" for p in national)
    assert "make ui" in lines[-2]
    assert lines[-1].startswith("query the catalog:") and f"--config {config}" in lines[-1]
