"""Real boundaries: invalid polygons are repaired and the repair recorded; only unrepairable ones are rejected."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import geopandas as gpd
import pytest
import shapely
from shapely.geometry import LineString, Polygon

from epiatlas.contracts import evaluate_contract, load_contract
from epiatlas.quality import regions_kept_check
from tests.ingest_fixtures import connection_with_regions, ingest, quarantine_rows, square

BOWTIE = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])  # self-intersecting ring, crossing at (0.5, 0.5)
BOWTIE_HALVES = shapely.union_all([Polygon([(0, 0), (0.5, 0.5), (0, 1)]), Polygon([(1, 0), (1, 1), (0.5, 0.5)])])
MAPPING = {"region_id": "CVE", "name": "NOM"}


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    return connection_with_regions()


def boundary_file(path: Path, geometries: list[object], ids: list[str | None] | None = None) -> Path:
    """A GeoJSON file with one feature per geometry, codes R1.. and names."""
    ids = ids or [f"R{i + 1}" for i in range(len(geometries))]
    gpd.GeoDataFrame({"CVE": ids, "NOM": [f"n{i}" for i in range(len(ids))]}, geometry=geometries,
                     crs="EPSG:4326").to_file(path)
    return path


def test_bowtie_is_repaired_kept_and_recorded_as_a_repair(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    assert not BOWTIE.is_valid
    result = ingest(con, "regions", boundary_file(tmp_path / "r.geojson", [square(2, 0), BOWTIE]), columns=MAPPING)
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined, result.rows_repaired) == (2, 2, 0, 1)
    geometry, area = con.execute("SELECT geometry, area_km2 FROM staged_regions WHERE region_id = 'R2'").fetchone()
    repaired = shapely.from_wkb(geometry)
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon"
    assert repaired.equals(BOWTIE_HALVES), "make_valid keeps both triangles of the bow-tie"
    unit_square_km2 = con.execute("SELECT area_km2 FROM staged_regions WHERE region_id = 'R1'").fetchone()[0]
    assert area == pytest.approx(unit_square_km2 / 2, rel=1e-3), "the two triangles cover half the unit square"
    [row] = quarantine_rows(con, result)
    assert (row["action"], row["rules"], row["columns"], row["row_number"]) == ("repaired", "geometry_repaired",
                                                                              "geometry", 2)
    assert "Self-intersection" in row["message"] and "make_valid" in row["message"]
    assert json.loads(row["raw_values"]) == {"CVE": "R2", "NOM": "n1"}
    assert all(r.passed for r in evaluate_contract(con, load_contract("regions"), "staged_regions"))
    assert all(r.passed for r in evaluate_contract(con, load_contract("quarantine"), result.quarantine_table))


@pytest.mark.parametrize(("geometry", "reason"), [
    (Polygon([(0, 0), (1, 1), (2, 2), (0, 0)]), "no polygonal area"),
    (LineString([(0, 0), (1, 1)]), "LineString is not a polygon"),
    (None, "missing or empty geometry"),
], ids=["collapsed_ring", "line", "missing"])
def test_unrepairable_geometry_is_rejected_with_its_reason(con: duckdb.DuckDBPyConnection, tmp_path: Path,
                                                           geometry: object, reason: str) -> None:
    result = ingest(con, "regions", boundary_file(tmp_path / "r.geojson", [square(2, 0), geometry]), columns=MAPPING)
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined, result.rows_repaired) == (2, 1, 1, 0)
    [row] = quarantine_rows(con, result)
    assert (row["action"], row["row_number"]) == ("rejected", 2) and "geometry" in row["rules"].split(",")
    assert reason in row["message"]


def test_repaired_row_rejected_for_another_rule_keeps_only_the_rejection(con: duckdb.DuckDBPyConnection,
                                                                         tmp_path: Path) -> None:
    path = boundary_file(tmp_path / "r.geojson", [square(2, 0), BOWTIE], ids=["R1", None])
    result = ingest(con, "regions", path, columns=MAPPING)
    [row] = quarantine_rows(con, result)
    assert (row["action"], row["rules"]) == ("rejected", "not_null")
    assert result.rows_read == result.rows_accepted + result.rows_quarantined and result.rows_repaired == 0


def test_regions_file_with_only_a_code_column_is_accepted(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    gpd.GeoDataFrame({"CVE": ["R1", "R2"]}, geometry=[square(0, 0), square(1, 0)], crs="EPSG:4326").to_file(
        tmp_path / "r.gpkg")
    result = ingest(con, "regions", tmp_path / "r.gpkg", columns={"region_id": "CVE"})
    assert (result.rows_accepted, result.rows_quarantined) == (2, 0)
    assert con.execute("SELECT count(*) FROM staged_regions WHERE name IS NULL").fetchone()[0] == 2


def test_region_gate_fails_on_any_lost_region_by_default() -> None:
    kept = regions_kept_check(262, 0, 0.0, [])
    assert kept.passed and kept.name == "no_region_lost"
    lost = regions_kept_check(262, 10, 0.0, ["r.shp row 7: geometry: Ring Self-intersection"])
    assert not lost.passed and lost.failing_rows == 10
    assert "10 of 262" in lost.message and "r.shp row 7" in lost.message
    assert "quality.max_region_reject_share" in lost.message
    assert regions_kept_check(262, 10, 0.05, []).passed, "a configured tolerance is honoured"


@pytest.mark.slow
def test_a_bowtie_region_survives_the_ingest_job_and_its_repair_is_counted(tmp_path: Path) -> None:
    import dagster as dg

    from epiatlas.config import load_config
    from epiatlas.publish import warehouse_for
    from orchestration.definitions import build_definitions
    from tests.preflight_fixtures import tiny_project

    config = tiny_project(tmp_path)
    gpd.GeoDataFrame({"CVE": ["R1", "R2"]}, geometry=[square(0, 0), BOWTIE], crs="EPSG:4326").to_file(
        tmp_path / "data" / "regions.geojson")
    with dg.DagsterInstance.ephemeral() as instance:
        result = build_definitions(config).resolve_job_def("ingest_job").execute_in_process(instance=instance)
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in (ev.event_specific_data for ev in result.all_events
                        if ev.event_type_value == "ASSET_CHECK_EVALUATION")}
    assert checks[("regions", "no_region_lost")] and checks[("regions", "rows_reconcile")]
    assert all(checks.values()), checks
    with warehouse_for(load_config(config)).connect(["regions", "quarantine_summary"]) as con:
        assert con.execute("SELECT source, action, columns, rules, rows FROM quarantine_summary").fetchall() == [
            ("regions", "repaired", "geometry", "geometry_repaired", 1)]
        assert con.execute("SELECT count(*) FROM regions").fetchone()[0] == 2
