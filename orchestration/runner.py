"""Run the pipeline through Dagster from the command line: the same assets, checks and executor as the UI.

Each step process rebuilds the job from the module-level `job_for_config(config_path, name)`, with
the config path passed explicitly (not through the environment, which a long-lived forkserver would
have captured at its start).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from epiatlas.config import load_config
from epiatlas.errors import EpiatlasError
from epiatlas.publish import publish_catalog
from epiatlas.warehouse import PublishedCatalog
from orchestration.definitions import build_definitions
from orchestration.jobs import ALL_ASSETS_JOB


class PipelineRunError(EpiatlasError):
    """A Dagster run of the pipeline failed; the message lists the failed steps and their errors."""


@dataclass(frozen=True)
class RunSummary:
    """One Dagster run: which job, whether it succeeded, and the outcome of every asset check."""

    job: str
    run_id: str
    checks: tuple[tuple[str, str, bool], ...]  # (asset, check, passed)

    @property
    def failed_checks(self) -> list[str]:
        return [f"{asset}.{check}" for asset, check, ok in self.checks if not ok]


def job_for_config(config_path: str, name: str) -> dg.JobDefinition:
    """The named job of the definitions built for one config file."""
    return build_definitions(Path(config_path)).resolve_job_def(name)


@contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    """The user's Dagster instance when DAGSTER_HOME is set (runs then show in the UI), else a temporary one."""
    if home := os.environ.get("DAGSTER_HOME"):
        Path(home).mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with tempfile.TemporaryDirectory(prefix="epiatlas-dagster-") as home:
            with dg.DagsterInstance.local_temp(home) as instance:
                yield instance


def _execute(config_path: Path, instance: dg.DagsterInstance, in_process: bool, periods: list[str]) -> RunSummary:
    """One run of every asset; partitioned assets get every period in that same run (single-run backfill)."""
    job = job_for_config(str(config_path), ALL_ASSETS_JOB)
    tags: dict[str, str] = {}
    if job.partitions_def is not None:
        tags = {"dagster/asset_partition_range_start": periods[0], "dagster/asset_partition_range_end": periods[-1]}
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if in_process:
        result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags, raise_on_error=False)
    else:
        recon = dg.build_reconstructable_job(__name__, job_for_config.__name__, (str(config_path), ALL_ASSETS_JOB))
        result = dg.execute_job(recon, instance=instance, run_config=run_config, tags=tags, raise_on_error=False)
    if not result.success:
        failures = [
            f"{event.step_key}: {event.step_failure_data.error.message.strip() if event.step_failure_data.error else ''}"
            for event in result.all_events
            if event.is_step_failure
        ]
        raise PipelineRunError(f"run {result.run_id} of {job.name} failed:\n" + "\n".join(failures))
    checks = tuple(
        (ev.asset_key.to_user_string(), ev.check_name, ev.passed)
        for ev in (e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")
    )
    return RunSummary(job.name, result.run_id, checks)


def run_pipeline(config_path: Path, in_process: bool = False) -> tuple[RunSummary, PublishedCatalog]:
    """Materialize every asset for one config (multiprocess by default), then publish the catalog."""
    config_path = Path(config_path).resolve()
    cfg = load_config(config_path)
    with _instance() as instance:
        summary = _execute(config_path, instance, in_process, cfg.periods.keys)
    return summary, publish_catalog(cfg)
