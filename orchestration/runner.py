"""Run the pipeline through Dagster from the command line: the same assets, checks and executor as the UI.

Each step process rebuilds the job from the module-level `job_for_config(config_path, name)`, with
the config path passed explicitly (not through the environment, which a long-lived forkserver would
have captured at its start). A run holds the warehouse lock from start to end; it starts by removing
what killed runs left behind (temporary files, runs still recorded as started) and publishes through
the `catalog` asset, which only a run whose every upstream step succeeded reaches.

While it runs, a thread reads the run's finished steps from the instance's event log (the same for both
executors) and reports one line per step; the steps print their own `context.log` messages through a concise
console logger instead of Dagster's. After the run, `RunTimes` sums the step times per asset group.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from epiatlas.config import load_config
from epiatlas.errors import EpiatlasError, from_os_error, os_error_in
from epiatlas.preflight import require_preflight
from epiatlas.analyses import AnalysisPlan, plan_lines
from epiatlas.publish import RunRecord, warehouse_for
from epiatlas.warehouse import PublishedCatalog
from epiatlas.warehouse_lock import LockHolder, WarehouseLock, pid_alive
from orchestration.definitions import build_definitions
from orchestration.defs.publish import CATALOG_ASSET, LOCK_TOKEN_TAG
from orchestration.jobs import ALL_ASSETS_JOB, partition_range_tags
from orchestration.metadata import published_from_metadata

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

WAREHOUSE_TAG = "epiatlas/warehouse"
RUNNER_PID_TAG = "epiatlas/runner_pid"
RUNNER_HOST_TAG = "epiatlas/runner_host"
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
STEP_DONE = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
TIMED = {dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.STEP_START,
         dg.DagsterEventType.STEP_SUCCESS}  # fmt: skip
POLL_SECONDS = 0.5
# Dagster's system messages (e.g. each step worker starting) at INFO, so its DEBUG events stay in the event log;
# `make demo` writes the same setting into its instance's dagster.yaml.
QUIET_INSTANCE = {"python_logs": {"python_log_level": "INFO"}}
Report = Callable[[str], None]


class PipelineRunError(EpiatlasError):
    """A Dagster run of the pipeline failed; the message lists the failed steps and their errors."""


@dataclass(frozen=True)
class GroupTime:
    """The steps of one asset group in a run: how many, first start to last end, and their durations summed."""

    group: str
    steps: int
    wall_s: float
    step_sum_s: float


@dataclass(frozen=True)
class RunTimes:
    """Time per asset group of a successful run, and the run's own wall time (start to success)."""

    groups: tuple[GroupTime, ...]
    wall_s: float

    def table(self) -> str:
        """'group  steps  wall s  step-sum s' per group (slowest first) and the whole run."""
        rows = [(g.group, g.steps, g.wall_s, g.step_sum_s) for g in self.groups]
        rows.append(("total", sum(g.steps for g in self.groups), self.wall_s, sum(g.step_sum_s for g in self.groups)))
        width = max(len(r[0]) for r in rows)
        lines = [f"{'group':<{width}}  steps  {'wall s':>7}  {'step-sum s':>10}"]
        lines += [f"{name:<{width}}  {steps:>5}  {wall:>7.1f}  {total:>10.1f}" for name, steps, wall, total in rows]
        return "\n".join(lines)


@dataclass(frozen=True)
class RunSummary:
    """One successful Dagster run: which job, the outcome of every asset check, what its catalog asset published,
    and its time per asset group."""

    job: str
    run_id: str
    checks: tuple[tuple[str, str, bool], ...]  # (asset, check, passed)
    published: PublishedCatalog
    times: RunTimes

    @property
    def failed_checks(self) -> list[str]:
        return [f"{asset}.{check}" for asset, check, ok in self.checks if not ok]


class _StepMessages(logging.Handler):
    """Prints the messages steps log themselves (`context.log`) as '  <step>: <message>'; Dagster's own events are
    left to the run's event log (the UI) and to the runner's progress lines."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if meta is None or meta["dagster_event"] is not None:
            return
        source, text = meta["step_key"] or meta["job_name"], meta["orig_message"]
        print(f"  {text}" if text.startswith(f"{source}:") else f"  {source}: {text}", flush=True)


@dg.logger(
    {"log_level": dg.Field(str, default_value="INFO", description="threshold of the step messages printed")},
    description="The steps' own log messages, one line each (Dagster's events stay in the UI).",
)
def step_messages_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """A logger printing the steps' own messages at or above `log_level` to stdout."""
    logger = logging.Logger("epiatlas.steps", level=init_context.logger_config["log_level"])
    logger.addHandler(_StepMessages())
    return logger


def job_for_config(config_path: str, name: str) -> dg.JobDefinition:
    """The named job of the definitions built for one config file, logging to the console through
    `step_messages_logger` (the UI's runs keep Dagster's own loggers)."""
    job = build_definitions(Path(config_path)).resolve_job_def(name)
    return job.with_logger_defs({"console": step_messages_logger})


def step_groups(job: dg.JobDefinition) -> dict[str, str]:
    """The asset group of each top-level step (op) of an asset job."""
    return {
        assets.node_def.name: "+".join(sorted(set(assets.group_names_by_key.values())))
        for assets in job.asset_layer.asset_graph.assets_defs if assets.is_executable
    }  # fmt: skip


def run_times(instance: dg.DagsterInstance, run_id: str, groups: dict[str, str]) -> RunTimes:
    """Per asset group: steps, first start to last success, summed step durations; and the run's wall time."""
    records = [r.event_log_entry for r in instance.get_records_for_run(run_id, of_type=TIMED).records]
    run_at = {e.dagster_event_type: e.timestamp for e in records if e.step_key is None}
    started = {e.step_key: e.timestamp for e in records if e.dagster_event_type == dg.DagsterEventType.STEP_START}
    succeeded = [e for e in records if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS]
    by_group: dict[str, list[dg.EventLogEntry]] = {}
    for entry in succeeded:
        by_group.setdefault(groups[entry.step_key.split(".")[0]], []).append(entry)
    times = [
        GroupTime(group, len(ends), max(e.timestamp for e in ends) - min(started[e.step_key] for e in ends),
                  sum(e.dagster_event.event_specific_data.duration_ms for e in ends) / 1000)
        for group, ends in by_group.items()
    ]  # fmt: skip
    wall = run_at[dg.DagsterEventType.RUN_SUCCESS] - run_at[dg.DagsterEventType.RUN_START]
    return RunTimes(tuple(sorted(times, key=lambda g: -g.wall_s)), wall)


class StepProgress:
    """Reports '[ n/N] group: step done in s' for each finished step of the run carrying a lock token, read from
    the instance's event log by a thread while the run executes (so it works for both executors)."""

    def __init__(self, instance: dg.DagsterInstance, token: str, groups: dict[str, str], report: Report) -> None:
        self._instance, self._token, self._groups, self._report = instance, token, groups, report
        self._run_id: str | None = None
        self._cursor: str | None = None
        self._finished = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="epiatlas-step-progress", daemon=True)

    def __enter__(self) -> StepProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._poll()
        self._poll()  # the steps that finished since the last look

    def _poll(self) -> None:
        if self._run_id is None:
            found = self._instance.get_run_ids(dg.RunsFilter(tags={LOCK_TOKEN_TAG: self._token}), limit=1)
            if not found:
                return
            self._run_id = found[0]
        connection = self._instance.get_records_for_run(self._run_id, cursor=self._cursor, of_type=STEP_DONE)
        for record in connection.records:
            self._report(self._line(record.event_log_entry.get_dagster_event()))
        self._cursor = connection.cursor

    def _line(self, event: dg.DagsterEvent) -> str:
        self._finished += 1
        total = len(self._groups)
        outcome = (f"done in {event.step_success_data.duration_ms / 1000:.1f} s" if event.is_step_success
                   else "FAILED (the cause is printed when the run ends)")  # fmt: skip
        group = self._groups[event.step_key.split(".")[0]]
        return f"[{self._finished:>{len(str(total))}}/{total}] {group}: {event.step_key} {outcome}"


@contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    """The user's Dagster instance when DAGSTER_HOME is set (runs then show in the UI), else a temporary one."""
    if home := os.environ.get("DAGSTER_HOME"):
        Path(home).mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with tempfile.TemporaryDirectory(prefix="epiatlas-dagster-") as home:
            with dg.DagsterInstance.local_temp(home, overrides=QUIET_INSTANCE) as instance:
                yield instance


def run_tags(root: Path, holder: LockHolder) -> dict[str, str]:
    """Tags naming the warehouse, the lock this run holds, and the process that launched it."""
    return {
        WAREHOUSE_TAG: str(root),
        LOCK_TOKEN_TAG: holder.token,
        RUNNER_PID_TAG: str(holder.pid),
        RUNNER_HOST_TAG: holder.host,
    }


def fail_abandoned_runs(instance: dg.DagsterInstance, root: Path) -> list[str]:
    """Mark failed the runs on this warehouse still recorded as unfinished whose launching process is gone."""
    runs = instance.get_runs(dg.RunsFilter(statuses=UNFINISHED, tags={WAREHOUSE_TAG: str(root)}))
    abandoned = [
        r for r in runs
        if r.tags.get(RUNNER_HOST_TAG) == socket.gethostname() and not pid_alive(int(r.tags.get(RUNNER_PID_TAG, "0")))
    ]  # fmt: skip
    for run in abandoned:
        pid = run.tags[RUNNER_PID_TAG]
        instance.report_run_failed(run, f"the process that launched this run (pid {pid}) ended without finishing it "
                                        "(killed or crashed); marked failed by the next run on this warehouse")
    return [r.run_id for r in abandoned]


def _published(result: dg.ExecuteInProcessResult | dg.ExecuteJobResult) -> PublishedCatalog:
    """What the run's catalog asset reported publishing."""
    return next(
        published_from_metadata(e.step_materialization_data.materialization.metadata)
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == dg.AssetKey(CATALOG_ASSET)
    )


def _epiatlas_errors() -> dict[str, type[EpiatlasError]]:
    """Every EpiatlasError subclass loaded, by class name."""
    found, todo = {}, [EpiatlasError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def _chain(error: SerializableErrorInfo | None) -> list[SerializableErrorInfo]:
    """An error and the errors it was raised from (cause, else context), outermost first."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause or error.context
    return chain


def _text(error: SerializableErrorInfo) -> str:
    """The error's message without its 'module.ClassName: ' prefix, on one line."""
    first, _, rest = error.message.strip().partition(": ")
    text = rest if first.split(".")[-1] == error.cls_name else error.message.strip()
    return " ".join(text.split())


def failure_cause(step: str, error: SerializableErrorInfo | None,
                  failed_checks: list[dg.AssetCheckEvaluation]) -> str:
    """'<step>: <ErrorClass>: <message>' for the epiatlas error (or OS error, or failed blocking checks, one line
    each) behind a step failure, instead of Dagster's 'Error occurred while executing op' wrapper."""
    chain = _chain(error)
    known = _epiatlas_errors()
    if mine := next((e for e in chain if e.cls_name in known), None):
        return f"{step}: {mine.cls_name}: {_text(mine)}"
    if os_error := next((err for e in chain if (err := os_error_in(e.message))), None):
        exc = from_os_error(os_error, f"step {step}")
        return f"{step}: {type(exc).__name__}: {exc}"
    if failed_checks:
        return "\n".join(f"{step}: blocking check failed: {c.check_name}: "
                         f"{c.description or 'see the check in the Dagster UI'}" for c in failed_checks)
    return f"{step}: {chain[-1].cls_name}: {_text(chain[-1])}" if chain else f"{step}: failed"


def _step_failure(event: dg.DagsterEvent, events: list[dg.DagsterEvent]) -> str:
    """The cause of one step failure event, with the blocking checks that failed in that step."""
    checks = [e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and e.step_key == event.step_key and not e.event_specific_data.passed]
    return failure_cause(event.step_key, event.step_failure_data.error if event.step_failure_data else None, checks)


def _run_failure(events: list[dg.DagsterEvent]) -> str:
    """The innermost error of a run that failed outside its steps (e.g. a step process could not start)."""
    errors = [e.event_specific_data.error for e in events
              if e.event_type_value == "PIPELINE_FAILURE" and getattr(e.event_specific_data, "error", None)]
    if not errors:
        return "run: failed before any step ran; see the run in the Dagster UI (`make ui`)"
    innermost = _chain(errors[0])[-1]
    return f"run: {innermost.cls_name}: {_text(innermost)}"


def _execute(
    config_path: Path, instance: dg.DagsterInstance, in_process: bool, periods: list[str], tags: dict[str, str],
    report: Report, plan: AnalysisPlan,
) -> RunSummary:
    """One run of every asset; partitioned assets get every period in that same run (single-run backfill)."""
    job = job_for_config(str(config_path), ALL_ASSETS_JOB)
    groups = step_groups(job)
    if job.partitions_def is not None:
        tags = {**tags, **partition_range_tags(periods)}
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with StepProgress(instance, tags[LOCK_TOKEN_TAG], groups, report):
        if in_process:
            result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags, raise_on_error=False)
        else:
            recon = dg.build_reconstructable_job(__name__, job_for_config.__name__, (str(config_path), ALL_ASSETS_JOB))
            result = dg.execute_job(recon, instance=instance, run_config=run_config, tags=tags, raise_on_error=False)
    failures = [_step_failure(event, result.all_events) for event in result.all_events if event.is_step_failure]
    if not result.success and not failures:
        failures = [_run_failure(result.all_events)]
    _record(result, job, failures, Path(tags[WAREHOUSE_TAG]), plan)
    if not result.success:
        raise PipelineRunError(
            f"run {result.run_id} of {job.name} failed ({len(failures)} step(s)); nothing was published (the previous "
            f"catalog stays as it was). To publish the outcomes and every analysis that succeeded, without the tables "
            f"of what failed or was skipped: `epiatlas publish --config {config_path} --partial`. The cause of each "
            f"failure, last line last:\n" + "\n".join(failures)
        )
    checks = tuple(
        (ev.asset_key.to_user_string(), ev.check_name, ev.passed)
        for ev in (e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")
    )
    return RunSummary(job.name, result.run_id, checks, _published(result), run_times(instance, result.run_id, groups))


def _record(result: dg.ExecuteInProcessResult | dg.ExecuteJobResult, job: dg.JobDefinition, failures: list[str],
            root: Path, plan: AnalysisPlan) -> None:
    """Store in the warehouse what this run wrote and what failed (`epiatlas publish --partial` reads it)."""
    written = {e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    graph = {key.to_user_string() for key in job.asset_layer.asset_graph.get_all_asset_keys()} - {CATALOG_ASSET}
    RunRecord(result.run_id, result.success, tuple(sorted(written - {CATALOG_ASSET})), tuple(failures),
              tuple(sorted(graph)), plan.summary()).write(root)


def _quiet(line: str) -> None:
    """Progress lines go nowhere unless the caller asks for them."""


def run_pipeline(
    config_path: Path, in_process: bool = False, progress: Report = _quiet
) -> tuple[RunSummary, PublishedCatalog]:
    """Materialize every asset for one config (multiprocess by default), the catalog last, under the warehouse lock;
    `progress` gets the analyses planned, then one line per finished step."""
    config_path = Path(config_path).resolve()
    cfg = load_config(config_path)
    plan = require_preflight(cfg)  # every problem found before the lock is taken and any table is touched
    for line in plan_lines(plan):
        progress(line)
    warehouse = warehouse_for(cfg)
    with WarehouseLock(warehouse.root) as lock, _instance() as instance:
        warehouse.clean_temporaries()
        fail_abandoned_runs(instance, warehouse.root)
        try:
            tags = run_tags(warehouse.root, lock.holder)
            summary = _execute(config_path, instance, in_process, cfg.periods.keys, tags, progress, plan)
        finally:
            warehouse.clean_temporaries()
    return summary, summary.published
