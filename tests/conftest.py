"""Shared fixtures: one small synthetic demo data set per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from epiatlas.demo import DemoSpec, generate_demo


def pytest_configure(config: pytest.Config) -> None:
    """Runs in tests use temporary Dagster instances, never the developer's DAGSTER_HOME."""
    os.environ.pop("DAGSTER_HOME", None)


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Config path of a small generated demo (synthetic data, fixed seed)."""
    return generate_demo(tmp_path_factory.mktemp("demo"), DemoSpec.small())


@pytest.fixture(scope="session")
def small_demo_run(small_demo: Path):
    """The small demo materialized once in process for the tests that only read what it published (its warehouse
    is the demo's own; tests that change anything copy the demo first)."""
    from orchestration.runner import run_pipeline

    summary, published = run_pipeline(small_demo, in_process=True)
    return summary, published

