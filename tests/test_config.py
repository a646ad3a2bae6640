"""Configuration fails early and safely: names stay inside the warehouse, strict types, known pollutants only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from epiatlas.config import GUIDELINES, load_config
from epiatlas.errors import ConfigError


def write_config(tmp_path: Path, **sections: object) -> Path:
    """A minimal valid config (regions + aggregated counts) in tmp_path/project, with `sections` merged in."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    data: dict[str, object] = {
        "sources": {"regions": {"path": "data/r.gpkg"}, "hospitalization_counts": {"path": "data/c.csv"}},
        "periods": {"start": 2020, "end": 2021},
        "warehouse": {"root": "warehouse"},
    }
    for key, value in sections.items():
        data[key] = data[key] | value if isinstance(data.get(key), dict) else value  # type: ignore[operator]
    path = project / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_minimal_config_loads_with_safe_defaults(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    assert cfg.warehouse.catalog_name == "catalog.duckdb"
    assert cfg.warehouse.root == tmp_path / "project" / "warehouse"
    assert cfg.quality.max_region_reject_share == 0.0, "losing any region fails by default"


@pytest.mark.parametrize("name", [
    "/tmp/unrelated.duckdb", "../x.duckdb", "tables/hospitalizations/data.parquet", "tables/x.duckdb",
    "sub/catalog.duckdb", "..\\x.duckdb", "catalog.parquet", ".duckdb", ".hidden.duckdb", "", "..",
])
def test_catalog_name_must_be_a_plain_duckdb_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"catalog_name"):
        load_config(write_config(tmp_path, warehouse={"root": "warehouse", "catalog_name": name}))


def test_other_plain_catalog_names_are_accepted(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, warehouse={"root": "warehouse", "catalog_name": "atlas-2024.duckdb"}))
    assert cfg.warehouse.catalog_name == "atlas-2024.duckdb"


@pytest.mark.parametrize(("root", "reason"), [
    ("/", "file-system root"),
    (str(Path.home()), "home folder"),
    (".", "holds the source file"),
    ("data", "holds the source file"),
])
def test_warehouse_root_must_be_a_dedicated_folder(tmp_path: Path, root: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_config(write_config(tmp_path, warehouse={"root": root}))


@pytest.mark.parametrize(("section", "values"), [
    ("outcomes", {"suppression_threshold": True}),
    ("outcomes", {"suppression_threshold": "5"}),
    ("outcomes", {"suppression_threshold": 2.5}),
    ("outcomes", {"confidence_level": True}),
    ("outcomes", {"severity": {"death": "yes"}}),
    ("outcomes", {"severity": {"icu": 1}}),
    ("outcomes", {"severity": {"los_days_gt": True}}),
    ("outcomes", {"reference_population": {"kind": "custom", "weights": {"0-4": True}}}),
    ("quality", {"max_reject_share": True}),
    ("quality", {"max_region_reject_share": "0"}),
    ("periods", {"start": "2020", "end": 2021}),
    ("exposure", {"idw_max_stations": True}),
    ("exposure", {"guidelines": {"PM25": True}}),
    ("synthetic", "true"),
])
def test_privacy_and_rule_settings_are_strictly_typed(tmp_path: Path, section: str, values: object) -> None:
    with pytest.raises(ConfigError, match=r"invalid configuration"):
        load_config(write_config(tmp_path, **{section: values}))


def test_suppression_threshold_true_is_not_read_as_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"suppression_threshold"):
        load_config(write_config(tmp_path, outcomes={"suppression_threshold": True}))
    cfg = load_config(write_config(tmp_path, outcomes={"suppression_threshold": 10}))
    assert cfg.outcomes.suppression_threshold == 10


def test_guidelines_override_defaults_and_reject_unknown_pollutants(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, exposure={"guidelines": {"PM25": 5}}))
    assert cfg.exposure.guidelines == GUIDELINES | {"PM25": 5.0}, "the other pollutants keep their defaults"
    with pytest.raises(ConfigError, match=r"unknown pollutant.*PM2\.5"):
        load_config(write_config(tmp_path, exposure={"guidelines": {"PM2.5": 5}}))


def test_config_errors_end_with_one_line_per_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, outcomes={"suppression_threshold": True}, periods={"start": 1, "end": 2}))
    lines = str(info.value).splitlines()
    assert any(line.startswith("outcomes.suppression_threshold:") for line in lines)
    assert any(line.startswith("periods.start:") for line in lines)
    assert "errors.pydantic.dev" not in str(info.value), "no links to pydantic's docs, only what to fix"
