"""Preflight: every problem that needs no table is found before a run touches anything, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from epiatlas.config import load_config
from epiatlas.errors import PreflightError
from epiatlas.preflight import WAREHOUSE_MARKER, preflight, require_preflight
from tests.preflight_fixtures import tiny_project


def problems(config: Path) -> dict[str, str]:
    """Preflight problems of a config file, keyed by where they are."""
    return {p.where: p.message for p in preflight(load_config(config)).problems}


def test_a_sound_project_passes_and_says_what_was_checked(tmp_path: Path) -> None:
    result = preflight(load_config(tiny_project(tmp_path)))
    assert result.ok, result.problems
    assert any(line.startswith("sources.hospitalization_counts: 1 file(s), csv") for line in result.checked)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    config = tiny_project(
        tmp_path,
        sources_hospitalization_counts={"path": "data/counts.csv", "columns": {"cases": "casos"}},
        outcomes={"case_icd10": ["E10-E14", "diabetes"]},
        exposure={"projected_crs": "EPSG:999999"},
        periods={"start": 2020, "end": 2021},
    )
    found = problems(config)
    assert "casos" in found["sources.hospitalization_counts"] and "missing required column" in found[
        "sources.hospitalization_counts"]
    assert "diabetes" in found["outcomes.case_icd10"]
    assert "exposure.projected_crs" in found
    with pytest.raises(PreflightError) as info:
        require_preflight(load_config(config))
    assert "3 problem(s)" in str(info.value)
    assert not (tmp_path / "warehouse").exists(), "nothing is created while problems remain"


def test_periods_must_be_covered_by_the_data(tmp_path: Path) -> None:
    found = problems(tiny_project(tmp_path, periods={"start": 2019, "end": 2021}))
    assert "periods [2019] have no count period" in found["sources.hospitalization_counts"]
    found = problems(tiny_project(tmp_path, periods={"start": 2030, "end": 2031}))
    assert "no count period falls in periods 2030..2031 (the data has 2020..2021)" in found[
        "sources.hospitalization_counts"]


def test_census_years_and_admission_dates_are_checked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "census.csv").write_text("region_id,year,age_group,sex,population\nR1,2020,0-4,M,10\n")
    (data / "h.csv").write_text("record_id,admission_date,discharge_date,region_id,age,sex,icd10,discharge_status\n"
                                "a,05/03/2018,06/03/2018,R1,40,M,E119,alive\n")
    config = tiny_project(tmp_path, sources_hospitalization_counts=None,
                          sources_census={"path": "data/census.csv"},
                          sources_hospitalizations={"path": "data/h.csv", "date_format": "%d/%m/%Y"},
                          outcomes={"reference_population": {"kind": "custom", "weights": {"0-4": 1, "5+": 1}}})
    found = problems(config)
    assert "periods [2021] have no census year (the data has 2020..2020)" in found["sources.census"]
    assert "no admission date falls in periods 2020..2021 (the data has 2018..2018)" in found[
        "sources.hospitalizations"]
    assert "unknown ['5+']" in found["outcomes.reference_population.weights"]


@pytest.mark.parametrize(("entries", "ok"), [
    ([], True), (["tables/"], True), ([".epiatlas.lock"], True), ([WAREHOUSE_MARKER, "notes.txt"], True),
    (["notes.txt"], False), (["thesis/"], False),
])
def test_warehouse_must_be_empty_or_epiatlas_own(tmp_path: Path, entries: list[str], ok: bool) -> None:
    config = tiny_project(tmp_path)
    root = tmp_path / "warehouse"
    root.mkdir()
    for name in entries:
        (root / name.rstrip("/")).mkdir() if name.endswith("/") else (root / name).write_text("x")
    found = problems(config)
    assert ("warehouse.root" not in found) is ok, found
    if not ok:
        assert "not an epiatlas warehouse" in found["warehouse.root"]


def test_run_preflight_marks_the_warehouse_as_epiatlas_own(tmp_path: Path) -> None:
    cfg = load_config(tiny_project(tmp_path))
    require_preflight(cfg)
    assert (cfg.warehouse.root / WAREHOUSE_MARKER).is_file()
    (cfg.warehouse.root / "notes.txt").write_text("the marker says the folder is ours")
    assert preflight(cfg).ok


def test_catalog_name_that_is_a_folder_and_unwritable_root_are_problems(tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(tiny_project(tmp_path))
    (cfg.warehouse.root / "catalog.duckdb").mkdir(parents=True)
    assert "is a folder" in problems(cfg.config_path)["warehouse.catalog_name"]
    monkeypatch.setattr("epiatlas.preflight.os.access", lambda path, mode: False)
    assert "not writable" in problems(cfg.config_path)["warehouse.root"]


def test_covariate_tables_are_checked_like_sources(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dep.csv").write_text("cve,indice\nR1,0.4\nR2,0.7\n")
    variable = {"column": "indice", "unit": "index", "description": "deprivation index"}
    good = {"path": "data/dep.csv", "region_column": "cve", "variables": {"deprivation": variable}}
    assert preflight(load_config(tiny_project(tmp_path, covariates={"dep": good}))).ok
    bad = good | {"variables": {"deprivation": variable | {"column": "index"}}}
    found = problems(tiny_project(tmp_path, covariates={"dep": bad}))
    assert "dep.csv: missing required column(s) deprivation (as 'index')" in found["covariates.dep"]
