"""Ingest: whole-file errors raise specific exceptions; bad rows land in quarantine with rule, row and raw values."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import shapely

from epiatlas.contracts import evaluate_contract, load_contract
from epiatlas.errors import (
    ConfigError,
    EmptySourceError,
    GeometryError,
    MissingSourceFileError,
    SchemaMismatchError,
    SourceEncodingError,
    SourceParseError,
    WarehouseError,
)
from tests.ingest_fixtures import (
    GOOD_STAY,
    HOSP_HEADER,
    connection_with_regions,
    ingest,
    quarantine_rows,
    regions_frame,
    square,
    stays,
    write_csv,
)

COUNTS_HEADER = "region_id,period,cases,deaths,population"


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    return connection_with_regions()


def only_quarantined(con: duckdb.DuckDBPyConnection, path: Path, source: str = "hospitalizations",
                     **cfg: object) -> dict[str, object]:
    """Ingest a file expected to quarantine exactly one row, and return that row."""
    result = ingest(con, source, path, **cfg)
    rows = quarantine_rows(con, result)
    assert len(rows) == 1, rows
    return rows[0]


# --- whole-file errors -------------------------------------------------------------------------------------------

def test_missing_file_names_the_path(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(MissingSourceFileError, match=r"nope\.csv.*not found"):
        ingest(con, "hospitalizations", tmp_path / "nope.csv")


@pytest.mark.parametrize("content", ["", HOSP_HEADER + "\n"], ids=["zero_bytes", "header_only"])
def test_empty_file_is_rejected(con: duckdb.DuckDBPyConnection, tmp_path: Path, content: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(content)
    with pytest.raises(EmptySourceError, match=r"h\.csv"):
        ingest(con, "hospitalizations", path)


def test_wrong_encoding_says_which_encoding_to_set(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", "region_id,year,age_group,sex,population,nombre", "R1,2020,0-4,M,10,Querétaro",
                     encoding="latin-1")
    with pytest.raises(SourceEncodingError, match=r"c\.csv.*utf-8.*encoding: latin-1"):
        ingest(con, "census", path, extra_columns="ignore")
    assert ingest(con, "census", path, extra_columns="ignore", encoding="latin-1").rows_accepted == 1


def test_missing_required_column_lists_file_columns_and_mapping(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", "region_id,year,grupo,sex,population", "R1,2020,0-4,M,10")
    with pytest.raises(SchemaMismatchError) as info:
        ingest(con, "census", path, columns={"age_group": "edad"})
    message = str(info.value)
    assert "c.csv" in message and "age_group (as 'edad')" in message and "'grupo'" in message and "edad" in message


def test_extra_column_is_an_error_unless_ignored(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", "region_id,year,age_group,sex,population,notes", "R1,2020,0-4,M,10,x")
    with pytest.raises(SchemaMismatchError, match=r"c\.csv.*\['notes'\].*extra_columns: ignore"):
        ingest(con, "census", path)
    assert ingest(con, "census", path, extra_columns="ignore").rows_accepted == 1


def test_mapping_an_unknown_canonical_column_is_a_config_error(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sources.census.columns.*'agegroup'"):
        ingest(con, "census", tmp_path / "c.csv", columns={"agegroup": "g"})


def test_foreign_key_table_must_be_registered(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", "region_id,year,age_group,sex,population", "R1,2020,0-4,M,10")
    with pytest.raises(WarehouseError, match="'regions'"):
        ingest(duckdb.connect(), "census", path)


# --- row-level problems go to quarantine -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("row", "rule", "column", "fragment"),
    [
        ("A1,2020-01-01,2020-01-05,R1,abc,M,E11,alive,", "type", "age", "age: 'abc' is not a valid INTEGER"),
        ("A1,2020-13-45,2020-01-05,R1,40,M,E11,alive,", "type", "admission_date", "'2020-13-45' is not a date"),
        ("A1,2020-01-05,2020-01-01,R1,40,M,E11,alive,", "discharge_not_before_admission",
         "admission_date+discharge_date",
         "failed for admission_date='2020-01-05', discharge_date='2020-01-01': A stay cannot end before it starts."),
        ("A1,2020-01-01,2020-01-05,R9,40,M,E11,alive,", "foreign_key", "region_id",
         "'R9' not found in regions.region_id"),
        ("A1,2020-01-01,2020-01-05,R1,40,X,E11,alive,", "allowed", "sex", "'X' is not one of M, F"),
        ("A1,2020-01-01,2020-01-05,R1,130,M,E11,alive,", "range", "age", "'130' is outside [0, 120] years"),
        ("A1,2020-01-01,2020-01-05,R1,40.5,M,E11,alive,", "integer", "age", "'40.5' is not a whole number"),
        ("A1,2020-01-01,2020-01-05,R1,40,M,E1,alive,", "pattern", "icd10", "'E1' does not match"),
        ("A1,,2020-01-05,R1,40,M,E11,alive,", "not_null", "admission_date", "admission_date: missing value"),
    ],
    ids=["wrong_type", "bad_date", "discharge_before_admission", "unknown_region", "disallowed", "out_of_range",
         "non_integer", "pattern", "missing"],
)
def test_bad_row_is_quarantined_with_rule_row_and_raw_values(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, row: str, rule: str, column: str, fragment: str
) -> None:
    path = stays(tmp_path / "h.csv", f"A0,{GOOD_STAY}", row)
    bad = only_quarantined(con, path)
    assert (bad["rules"], bad["columns"], bad["row_number"], bad["file"]) == (rule, column, 2, "h.csv")
    assert fragment in bad["message"]
    assert json.loads(bad["raw_values"]) == dict(zip(HOSP_HEADER.split(","), [v or None for v in row.split(",")]))


def test_several_broken_rules_are_all_reported(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    bad = only_quarantined(con, stays(tmp_path / "h.csv", "A1,2020-01-01,2020-01-05,R9,abc,X,E11,alive,"))
    assert bad["rules"] == "type,allowed,foreign_key" and bad["columns"] == "age,sex,region_id"


def test_duplicate_key_keeps_the_first_row_and_names_it(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = stays(tmp_path / "h.csv", f"A1,{GOOD_STAY}", f"A2,{GOOD_STAY}", f"A1,{GOOD_STAY}")
    result = ingest(con, "hospitalizations", path)
    (bad,) = quarantine_rows(con, result)
    assert (bad["rules"], bad["row_number"]) == ("primary_key", 3)
    assert "duplicate key record_id='A1': first seen at row 1" in bad["message"]
    assert json.loads(bad["raw_values"])["record_id"] == "A1"
    assert con.execute("SELECT record_id FROM staged_hospitalizations").fetchall() == [("A1",), ("A2",)]


def test_negative_and_non_integer_counts(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "n.csv", COUNTS_HEADER, "R1,2020,-3,,100", "R2,2020,2.5,,100", "R1,2021,5,6,100")
    result = ingest(con, "hospitalization_counts", path)
    rules = [(r["row_number"], r["rules"], r["columns"]) for r in quarantine_rows(con, result)]
    assert rules == [(1, "range", "cases"), (2, "integer", "cases"), (3, "deaths_not_above_cases", "deaths+cases")]


def test_rows_read_equal_accepted_plus_quarantined(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rows = [f"A{i},{GOOD_STAY}" for i in range(50)] + ["A7,2020-01-01,2020-01-05,R1,abc,M,E11,alive,"] * 3
    result = ingest(con, "hospitalizations", stays(tmp_path / "h.csv", *rows))
    assert result.rows_read == 53 and (result.rows_accepted, result.rows_quarantined) == (50, 3)
    assert result.reject_share == pytest.approx(3 / 53)
    counted = con.execute(f"SELECT (SELECT count(*) FROM {result.accepted_table}) + "
                          f"(SELECT count(*) FROM {result.quarantine_table})").fetchone()[0]
    assert counted == result.rows_read


# --- layouts, formats, normalisation -----------------------------------------------------------------------------

def test_csv_and_parquet_give_identical_staged_tables(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rows = [f"A{i},2020-01-0{1 + i % 5},2020-01-09,R{1 + i % 2},{i},{'MF'[i % 2]},E11.{i},alive,"
            f"{str(i % 3 == 0).lower()}" for i in range(20)]
    csv = stays(tmp_path / "h.csv", *rows, "B1,2020-01-01,2020-01-05,R1,abc,M,E11,alive,")
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False).replace("", None)
    frame.to_parquet(tmp_path / "h.parquet")
    ingest(con, "hospitalizations", csv)
    from_csv = con.execute("SELECT * FROM staged_hospitalizations").fetchall()
    q_csv = con.execute("SELECT rules, row_number, raw_values FROM quarantine_hospitalizations").fetchall()
    result = ingest(con, "hospitalizations", tmp_path / "h.parquet")
    assert con.execute("SELECT * FROM staged_hospitalizations").fetchall() == from_csv
    assert con.execute("SELECT rules, row_number, raw_values FROM quarantine_hospitalizations").fetchall() == q_csv
    assert result.rows_read == 21 and len(from_csv) == 20


def test_typed_parquet_columns_are_checked_too(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    duckdb.connect().execute(f"""COPY (SELECT * FROM (VALUES ('A1', DATE '2020-01-05', DATE '2020-01-01', 'R1', 40, 'M',
        'E11', 'alive', true), ('A2', DATE '2020-01-01', DATE '2020-01-02', 'R1', 200, 'F', 'E11', 'alive', NULL))
        t(record_id, admission_date, discharge_date, region_id, age, sex, icd10, discharge_status, icu))
        TO '{tmp_path / "t.parquet"}' (FORMAT parquet)""")
    result = ingest(con, "hospitalizations", tmp_path / "t.parquet")
    rows = quarantine_rows(con, result)
    assert [(r["row_number"], r["rules"]) for r in rows] == [(1, "discharge_not_before_admission"), (2, "range")]
    assert json.loads(rows[1]["raw_values"])["age"] == "200"


def test_other_column_names_recode_date_format_and_no_icu(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "egresos.csv", "folio;ingre;egre;mun;edad;sexo;diag;motivo",
                     "F1;01/02/2020;05/02/2020;R2;40;H;e11.9;1", "F2;03/02/2020;04/02/2020;R1;7;M; j18 ;2")
    columns = {"record_id": "folio", "admission_date": "ingre", "discharge_date": "egre", "region_id": "mun",
               "age": "edad", "sex": "sexo", "icd10": "diag", "discharge_status": "motivo"}
    recode = {"sex": {"H": "M", "M": "F"}, "discharge_status": {"1": "alive", "2": "death"}}
    result = ingest(con, "hospitalizations", path, columns=columns, recode=recode, date_format="%d/%m/%Y",
                    delimiter=";")
    assert result.rows_quarantined == 0
    assert con.execute("SELECT * FROM staged_hospitalizations").fetchall() == [
        ("F1", date(2020, 2, 1), date(2020, 2, 5), "R2", 40, "M", "E119", "alive", None),
        ("F2", date(2020, 2, 3), date(2020, 2, 4), "R1", 7, "F", "J18", "death", None),
    ]


def test_icd10_is_normalised_before_the_pattern_check(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rows = [f"A{i},2020-01-01,2020-01-05,R1,40,M,{code},alive," for i, code in enumerate([" e11.9 ", "I21.0", "E.11"])]
    ingest(con, "hospitalizations", stays(tmp_path / "h.csv", *rows, "Z1,2020-01-01,2020-01-05,R1,40,M,11.9,alive,"))
    codes = con.execute("SELECT icd10 FROM staged_hospitalizations").fetchall()
    assert [c[0] for c in codes] == ["E119", "I210", "E11"]
    assert con.execute("SELECT rules FROM quarantine_hospitalizations").fetchall() == [("pattern",)]


def test_record_id_is_generated_from_file_and_row(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "sin_id.csv", HOSP_HEADER.split(",", 1)[1], GOOD_STAY, GOOD_STAY)
    ingest(con, "hospitalizations", path)
    generated = con.execute("SELECT record_id FROM staged_hospitalizations").fetchall()
    assert generated == [("sin_id.csv:1",), ("sin_id.csv:2",)]


@pytest.mark.parametrize("with_period", [True, False])
def test_hospitalization_counts_with_and_without_period(con: duckdb.DuckDBPyConnection, tmp_path: Path,
                                                        with_period: bool) -> None:
    header = "region_id,period,cases,expected_cases" if with_period else "region_id,cases,expected_cases"
    rows = ["R1,2020,5,4.2", "R2,2020,0,1.5", "R1,2020,1,1"] if with_period else ["R1,5,4.2", "R2,0,1.5", "R2,1,1"]
    result = ingest(con, "hospitalization_counts", write_csv(tmp_path / "n.csv", header, *rows))
    staged = con.execute("SELECT region_id, period, cases, deaths, population, expected_cases "
                         "FROM staged_hospitalization_counts").fetchall()
    period = 2020 if with_period else None
    assert staged == [("R1", period, 5, None, None, 4.2), ("R2", period, 0, None, None, 1.5)]
    assert [r["rules"] for r in quarantine_rows(con, result)] == ["primary_key"]


def test_counts_need_population_or_expected_cases(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    bad = only_quarantined(con, write_csv(tmp_path / "n.csv", "region_id,cases,population", "R1,5,", "R2,1,10"),
                           "hospitalization_counts")
    assert bad["rules"] == "population_or_expected_cases"


def test_several_files_by_glob(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stays(tmp_path / "h2020.csv", f"A1,{GOOD_STAY}", f"A2,{GOOD_STAY}")
    stays(tmp_path / "h2021.csv", f"A3,{GOOD_STAY}", f"A1,{GOOD_STAY}")
    result = ingest(con, "hospitalizations", tmp_path / "h*.csv")
    (bad,) = quarantine_rows(con, result)
    assert (result.rows_read, bad["file"], bad["row_number"]) == (4, "h2021.csv", 2)
    assert "first seen at row 1 of h2020.csv" in bad["message"]


def test_readings_units_and_plausibility(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "station_id,date,pollutant,value,unit",
                     "S1,2020-01-01,PM2.5,12.5,ug/m3", "S1,2020-01-01,CO,1.2,mg/m3", "S1,2020-01-02,CO,1.2,ug/m3",
                     "S1,2020-01-03,PM10,9999,ug/m3", "S2,2020-01-01,NO2,-1,ug/m3", "S9,2020-01-01,O3,50,ug/m3")
    result = ingest(con, "pollutant_readings", path)
    assert [(r["row_number"], r["rules"]) for r in quarantine_rows(con, result)] == [
        (3, "unit_matches_pollutant"), (4, "plausible_value"), (5, "range"), (6, "foreign_key")]
    assert con.execute("SELECT pollutant FROM staged_pollutant_readings ORDER BY pollutant").fetchall() == [("CO",), ("PM25",)]


# --- geometry ----------------------------------------------------------------------------------------------------

def test_regions_are_measured_and_stored_as_wkb(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    regions_frame().to_file(tmp_path / "r.gpkg")
    result = ingest(con, "regions", tmp_path / "r.gpkg", columns={"region_id": "CVE", "name": "NOM"})
    rows = con.execute("SELECT region_id, area_km2, centroid_lon, centroid_lat, geometry FROM staged_regions")\
        .fetchall()
    assert result.rows_accepted == 2 and [r[0] for r in rows] == ["R1", "R2"]
    assert rows[0][1] == pytest.approx(12308.8, rel=1e-3)
    assert (rows[1][2], rows[1][3]) == (pytest.approx(1.5), pytest.approx(0.5, abs=1e-3))
    assert shapely.from_wkb(rows[0][4]).equals(square(0, 0))
    assert all(r.passed for r in evaluate_contract(con, load_contract("regions"), "staged_regions"))


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_projected_regions_without_crs_use_the_configured_one(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    projected = regions_frame().to_crs("EPSG:32631")
    projected.set_crs(None, allow_override=True).to_file(tmp_path / "r.shp")
    with pytest.raises(GeometryError, match=r"r\.shp.*no CRS.*'crs'"):
        ingest(con, "regions", tmp_path / "r.shp", columns={"region_id": "CVE", "name": "NOM"})
    ingest(con, "regions", tmp_path / "r.shp", columns={"region_id": "CVE", "name": "NOM"}, crs="EPSG:32631")
    lon = con.execute("SELECT centroid_lon FROM staged_regions ORDER BY region_id").fetchall()
    assert lon[0][0] == pytest.approx(0.5, abs=1e-3)


def test_projected_coordinates_under_a_geographic_crs_are_a_wrong_crs(con: duckdb.DuckDBPyConnection,
                                                                        tmp_path: Path) -> None:
    wrong = regions_frame().to_crs("EPSG:32631").set_crs("EPSG:4326", allow_override=True)
    wrong.to_file(tmp_path / "r.gpkg")
    with pytest.raises(GeometryError, match=r"r\.gpkg: wrong CRS.*EPSG:4326"):
        ingest(con, "regions", tmp_path / "r.gpkg", columns={"region_id": "CVE", "name": "NOM"})


def test_stations_get_the_region_that_contains_them(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "station_id,name,lon,lat", "S1,Centro,0.5,0.5", "S2,,1.5,0.2",
                     "S3,Lejos,50,50", "S4,Mal,0.5,95")
    result = ingest(con, "pollutant_stations", path)
    assert con.execute("SELECT station_id, region_id FROM staged_pollutant_stations").fetchall() == [
        ("S1", "R1"), ("S2", "R2"), ("S3", None)]
    assert [r["rules"] for r in quarantine_rows(con, result)] == ["range"]


@pytest.mark.parametrize("delimiter", [None, ","])
def test_ragged_csv_line_is_a_parse_error(con: duckdb.DuckDBPyConnection, tmp_path: Path,
                                          delimiter: str | None) -> None:
    path = write_csv(tmp_path / "c.csv", "region_id,year,age_group,sex,population",
                     *[f"R1,{2000 + i},0-4,M,10" for i in range(5)], "R1,2020,0-4,M,10,extra,fields")
    with pytest.raises(SourceParseError, match=r"sources\.census: .*c\.csv: line 7 \(data row 6\) is malformed: "
                                               r"7 fields where the header has 5 \(rule: csv format"):
        ingest(con, "census", path, delimiter=delimiter)


@pytest.mark.parametrize(("last", "what"), [("R1,2020,0-4", "3 fields where the header has 5"),
                                            ('R1,2020,"0-4,M,10', "quote opened on this line is never closed")],
                         ids=["ragged", "open_quote"])
def test_truncated_csv_beyond_the_sniffed_rows_names_its_last_line(con: duckdb.DuckDBPyConnection, tmp_path: Path,
                                                                   last: str, what: str) -> None:
    rows = [f"R{i},2020,0-4,M,10" for i in range(30_000)]  # more rows than DuckDB samples to sniff the dialect
    path = write_csv(tmp_path / "c.csv", "region_id,year,age_group,sex,population", *rows, last)
    with pytest.raises(SourceParseError, match=rf"c\.csv: line 30002 \(data row 30001\) is malformed: .*{what}"):
        ingest(con, "census", path)
