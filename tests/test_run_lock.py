"""One run per warehouse: the lock names its holder, a dead holder's lock is taken over, a live one is not;
runs whose launcher is gone are marked failed."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from epiatlas.errors import WarehouseLockedError
from epiatlas.warehouse_lock import LOCK_FILE, LockHolder, WarehouseLock, pid_alive, recorded_holder
from orchestration.defs.publish import LOCK_TOKEN_TAG, warehouse_lock_for_run
from orchestration.runner import fail_abandoned_runs, run_tags

STARTED = dg.DagsterRunStatus.STARTED

HOLD = (
    "import sys, time; from epiatlas.warehouse_lock import WarehouseLock; "
    "WarehouseLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
)


@pytest.fixture()
def holder_process(tmp_path: Path):
    """Another process holding the lock on tmp_path."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_second_run_fails_at_once_naming_the_holder_and_the_fix(tmp_path: Path, holder_process) -> None:
    with pytest.raises(WarehouseLockedError) as err:
        WarehouseLock(tmp_path).acquire()
    message = str(err.value)
    holder = recorded_holder(tmp_path)
    assert holder is not None and holder.pid == holder_process.pid
    assert f"pid {holder_process.pid} on host {socket.gethostname()}, started {holder.started_at}" in message
    assert f"delete {tmp_path / LOCK_FILE}" in message


def test_lock_of_a_killed_run_is_taken_over_with_a_log_line(tmp_path: Path, holder_process, caplog) -> None:
    dead_pid = holder_process.pid
    holder_process.kill()
    holder_process.wait()
    assert not pid_alive(dead_pid)
    caplog.set_level(logging.WARNING, logger="epiatlas.warehouse_lock")
    with WarehouseLock(tmp_path) as lock:
        assert lock.holder is not None and recorded_holder(tmp_path) == lock.holder
    assert f"taking over the stale lock on {tmp_path} left by pid {dead_pid}" in caplog.text


def test_record_of_a_live_process_is_not_taken_over(tmp_path: Path) -> None:
    """A lock file naming a running process (lock not held: e.g. a reused pid) needs a person to decide."""
    record = {"pid": 1, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00+00:00", "token": "x"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(WarehouseLockedError, match=f"pid 1 on host .* delete {tmp_path / LOCK_FILE}"):
        WarehouseLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE).unlink()
    with WarehouseLock(tmp_path):
        pass


def test_release_clears_the_record_and_the_lock_is_reusable(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="epiatlas.warehouse_lock")
    with WarehouseLock(tmp_path) as first:
        with pytest.raises(WarehouseLockedError, match=re.escape(first.holder.describe())):
            WarehouseLock(tmp_path).acquire()
    assert recorded_holder(tmp_path) is None
    with WarehouseLock(tmp_path):
        pass
    assert "stale" not in caplog.text


def test_catalog_step_reuses_its_runs_lock_and_otherwise_takes_its_own(tmp_path: Path) -> None:
    """The publish step of a `run_pipeline` run carries the run's lock token; a UI-launched one locks for itself."""
    with WarehouseLock(tmp_path) as held:
        with warehouse_lock_for_run(tmp_path, {LOCK_TOKEN_TAG: held.holder.token}):
            assert recorded_holder(tmp_path) == held.holder
        with pytest.raises(WarehouseLockedError, match=re.escape(held.holder.describe())):
            with warehouse_lock_for_run(tmp_path, {LOCK_TOKEN_TAG: "another run"}):
                pass
    with warehouse_lock_for_run(tmp_path, {}):
        holder = recorded_holder(tmp_path)
        assert holder is not None and holder.pid == os.getpid()
    assert recorded_holder(tmp_path) is None, "released when the step ends"


def test_only_runs_whose_launcher_is_gone_are_marked_failed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holders = {"killed": int(dead.stdout), "running": os.getpid()}
    with dg.DagsterInstance.ephemeral() as instance:
        for run_id, pid in holders.items():
            holder = LockHolder(pid=pid, host=socket.gethostname(), started_at="2026-01-01T00:00:00+00:00", token=run_id)
            instance.add_run(
                DagsterRun(job_name="all_assets_job", run_id=run_id, status=STARTED, tags=run_tags(tmp_path, holder))
            )
        other = LockHolder(pid=int(dead.stdout), host=socket.gethostname(), started_at="", token="other")
        instance.add_run(DagsterRun(job_name="all_assets_job", run_id="other_warehouse", status=STARTED,
                                    tags=run_tags(tmp_path / "elsewhere", other)))  # fmt: skip
        assert fail_abandoned_runs(instance, tmp_path) == ["killed"]
        status = {run_id: instance.get_run_by_id(run_id).status for run_id in [*holders, "other_warehouse"]}
    assert status == {"killed": dg.DagsterRunStatus.FAILURE, "running": STARTED, "other_warehouse": STARTED}
