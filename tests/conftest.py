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
