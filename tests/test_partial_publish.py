"""A failed analysis does not cost the user the rest: after a failed run nothing is published, the message says how
to publish what succeeded, and `epiatlas publish --partial` does so without any table of what failed or was skipped
(not even an earlier run's)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from epiatlas.cli.main import app
from epiatlas.config import load_config
from epiatlas.publish import warehouse_for
from orchestration.runner import PipelineRunError, run_pipeline
from tests.ingest_fixtures import square

N_SIDE = 6  # 36 regions on a grid, 2 years
INDICATORS = ["illiteracy", "no_primary_school", "dirt_floor", "low_income"]


def _write_indicators(root: Path, constant: str | None = None) -> None:
    rng = np.random.default_rng(11)
    regions = [f"R{i:02d}" for i in range(N_SIDE * N_SIDE)]
    base = rng.uniform(5, 40, size=(len(regions), 1))
    rows = [{"region_id": r, "year": y, **{c: float(np.clip(base[i, 0] + rng.normal(0, 4), 0, 100)) for c in INDICATORS}}
            for i, r in enumerate(regions) for y in (2020, 2021)]  # fmt: skip
    frame = pd.DataFrame(rows)
    if constant:
        frame[constant] = 12.5
    frame.to_csv(root / "indicators.csv", index=False)


def _project(root: Path) -> Path:
    rng = np.random.default_rng(5)
    ids = [f"R{i:02d}" for i in range(N_SIDE * N_SIDE)]
    gpd.GeoDataFrame({"region_id": ids, "parent_id": [f"P{i // 12}" for i in range(len(ids))]},
                     geometry=[square(i % N_SIDE, i // N_SIDE) for i in range(len(ids))], crs="EPSG:4326",
                     ).to_file(root / "regions.geojson")  # fmt: skip
    gdp = rng.normal(size=len(ids))
    pd.DataFrame({"region_id": ids, "gdp": gdp}).to_csv(root / "gdp.csv", index=False)
    population = rng.integers(2_000, 20_000, size=len(ids))
    counts = [{"region_id": r, "period": y, "population": int(population[i]),
               "cases": int(rng.poisson(population[i] * 2e-3 * np.exp(0.3 * gdp[i])))}
              for i, r in enumerate(ids) for y in (2020, 2021)]  # fmt: skip
    pd.DataFrame(counts).to_csv(root / "counts.csv", index=False)
    _write_indicators(root)
    config = {
        "sources": {"regions": {"path": "regions.geojson"}, "hospitalization_counts": {"path": "counts.csv"},
                    "socioeconomic_indicators": {"path": "indicators.csv"}},
        "periods": {"start": 2020, "end": 2021},
        "warehouse": {"root": "warehouse"},
        "covariates": {"gdp": {"path": "gdp.csv", "variables": {"gdp": {"unit": "z", "description": "GDP score."}}}},
        "models": {"glm": {"bootstrap": 0, "n_alphas": 5, "moran_permutations": 19}, "gbm": {"max_rounds": 20},
                   "pdp_grid_points": 3},
        "reports": {"level": "parent", "pdf": False},
    }  # fmt: skip
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _catalog_tables(config: Path) -> set[str]:
    with warehouse_for(load_config(config)).read_catalog() as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _info(config: Path) -> dict[str, str]:
    with warehouse_for(load_config(config)).read_catalog() as con:
        return {k: str(v) for k, v in con.execute("SELECT * FROM catalog_info").df().iloc[0].items()}


@pytest.fixture(scope="module")
def failed_after_success(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, set[str]]:
    """A run that succeeds, then one whose factor analysis fails (an indicator became constant)."""
    root = tmp_path_factory.mktemp("partial")
    config = _project(root)
    run_pipeline(config, in_process=True)
    before = _catalog_tables(config)
    _write_indicators(root, constant="dirt_floor")
    with pytest.raises(PipelineRunError) as info:
        run_pipeline(config, in_process=True)
    return config, str(info.value), before


def test_the_failure_names_the_cause_last_and_how_to_publish_the_rest(failed_after_success) -> None:
    config, message, before = failed_after_success
    assert {"socioeconomic_indices", "glm_coefficients", "region_profile"} <= before
    assert f"epiatlas publish --config {config} --partial" in message
    assert "nothing was published" in message
    last = message.splitlines()[-1]
    assert last.startswith("socioeconomic_factor_analysis: IndicesError:") and "dirt_floor" in last
    assert _catalog_tables(config) == before and _info(config)["partial"] == "false"  # the old catalog stays


def test_plain_publish_refuses_to_mix_tables_of_a_failed_run(failed_after_success) -> None:
    config, _, _ = failed_after_success
    result = CliRunner().invoke(app, ["publish", "--config", str(config)])
    assert result.exit_code == 2 and "--partial" in result.output and "IndicesError" in result.output


def test_partial_publish_holds_what_succeeded_and_names_what_failed(failed_after_success) -> None:
    config, _, before = failed_after_success
    result = CliRunner().invoke(app, ["publish", "--config", str(config), "--partial"])
    assert result.exit_code == 0, result.output
    assert "PARTIAL catalog" in result.output
    tables = _catalog_tables(config)
    assert {"published_outcomes", "regions", "covariates_gdp", "catalog_info"} <= tables
    stale = {"socioeconomic_indices", "factor_loadings", "glm_coefficients", "model_figures", "region_profile"}
    assert not tables & stale  # their Parquet files from the first run are still stored, but not published
    assert all(warehouse_for(load_config(config)).exists(t) for t in stale)
    info = _info(config)
    assert info["partial"] == "true" and "socioeconomic_factor_analysis: IndicesError" in info["failed"]
    assert {"socioeconomic_indices", "glm_coefficients", "region_profile"} <= set(info["left_out"].split(", "))
    assert "indices: on" in info["analyses"]


def test_an_analysis_switched_off_leaves_the_next_catalog_without_its_old_tables(failed_after_success) -> None:
    config, _, _ = failed_after_success  # runs last: it changes the project
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text(yaml.safe_dump({**raw, "indices": {"enabled": False}}), encoding="utf-8")
    summary, published = run_pipeline(config, in_process=True)
    assert not summary.failed_checks
    tables = _catalog_tables(config)
    assert "glm_coefficients" in tables and "socioeconomic_indices" not in tables
    assert warehouse_for(load_config(config)).exists("socioeconomic_indices")  # stored from before, not published
    assert "indices: off (switched off: indices.enabled is false)" in _info(config)["analyses"]
