"""Benchmark: the whole pipeline on the full synthetic demo, per step, multiprocess vs in-process.

Generates the full demo (2,400 municipalities, 10 years, about 1.4M records, 1.9M readings) under
benchmarks/_work/demo unless it is there already, then materializes every asset twice in the same run:
once with the multiprocess executor (what `epiatlas run` does) and once in a single process. Prints the
wall time of each run and each step's duration as Dagster recorded it.

    .venv/bin/python benchmarks/bench_demo_pipeline.py [--out benchmarks/_work/demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from epiatlas.config import load_config
from epiatlas.demo import DemoSpec, generate_demo
from orchestration.runner import run_pipeline


def _step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Duration of each step of a run, from its start and success events."""
    starts: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            seconds[event.step_key] = record.timestamp - starts[event.step_key]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_work" / "demo")
    args = parser.parse_args()
    config = args.out / "config.yaml"
    if not config.exists():
        started = time.perf_counter()
        generate_demo(args.out, DemoSpec())
        print(f"generated the full demo in {time.perf_counter() - started:.1f} s")
    warehouse = load_config(config).warehouse.root
    os.environ["DAGSTER_HOME"] = str(args.out / "_dagster_home")  # runs are kept, so their events can be read
    results: dict[str, tuple[float, dict[str, float]]] = {}
    for label, in_process in (("multiprocess", False), ("in-process", True)):
        shutil.rmtree(warehouse, ignore_errors=True)
        started = time.perf_counter()
        summary, _ = run_pipeline(config, in_process=in_process)
        wall = time.perf_counter() - started
        with DagsterInstance.get() as instance:
            results[label] = (wall, _step_seconds(instance, summary.run_id))
    steps = sorted(set().union(*(s for _, s in results.values())))
    print(f"\n{'step':<36}" + "".join(f"{label:>16}" for label in results))
    for step in steps:
        print(f"{step:<36}" + "".join(f"{results[label][1].get(step, float('nan')):>15.2f}s" for label in results))
    print(f"{'whole run (wall, incl. publish)':<36}" + "".join(f"{wall:>15.2f}s" for wall, _ in results.values()))


if __name__ == "__main__":
    main()
