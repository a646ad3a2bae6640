"""Shared fixtures: one small synthetic demo data set per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from epiatlas.demo import DemoSpec, generate_demo


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Config path of a small generated demo (synthetic data, fixed seed)."""
    return generate_demo(tmp_path_factory.mktemp("demo"), DemoSpec.small())
