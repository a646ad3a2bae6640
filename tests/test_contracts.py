"""Contracts: loading, validation of the format, Markdown rendering, and evaluate_contract on staged tables."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from epiatlas.contracts import (
    canonical_type,
    check_names,
    evaluate_contract,
    load_contract,
    load_contracts,
    parse_contract,
    render_markdown,
)
from epiatlas.errors import ContractError
from tests.ingest_fixtures import GOOD_STAY, connection_with_regions, ingest, stays

MINE = ["regions", "census", "hospitalizations", "hospitalization_counts", "pollutant_stations",
        "pollutant_readings", "socioeconomic_indicators", "quarantine"]
CANONICAL = {
    "regions": ["region_id", "name", "parent_id", "parent_name", "area_km2", "centroid_lon", "centroid_lat",
                "geometry"],
    "census": ["region_id", "year", "age_group", "sex", "population"],
    "hospitalizations": ["record_id", "admission_date", "discharge_date", "region_id", "age", "sex", "icd10",
                         "discharge_status", "icu"],
    "hospitalization_counts": ["region_id", "period", "cases", "deaths", "severe_cases", "population",
                               "expected_cases"],
    "pollutant_stations": ["station_id", "name", "lon", "lat", "region_id"],
    "pollutant_readings": ["station_id", "date", "pollutant", "value", "unit"],
    "quarantine": ["source", "file", "row_number", "columns", "rules", "message", "raw_values", "action"],
}


def test_every_contract_loads_with_valid_duckdb_types() -> None:
    contracts = load_contracts()
    assert set(MINE) <= set(contracts)
    con = duckdb.connect()
    for contract in contracts.values():
        for column in contract.columns:
            assert canonical_type(column.type) == column.type
            con.execute(f"SELECT CAST(NULL AS {column.type})")


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_columns_match_the_design(name: str) -> None:
    assert load_contract(name).column_names == CANONICAL[name]


def test_privacy_and_optional_columns() -> None:
    contracts = load_contracts()
    assert {n for n in MINE if contracts[n].privacy == "private"} == {
        "hospitalizations", "hospitalization_counts", "quarantine"
    }, "record-level data and unsuppressed small counts are never published as they are"
    indicators = load_contract("socioeconomic_indicators").columns[2:]
    assert len(indicators) == 12 and all(c.optional and c.unit == "percent" and c.max == 100 for c in indicators)
    assert load_contract("hospitalizations").column("icu").optional
    assert load_contract("regions").column("name").optional, "a boundary file with only a code column is accepted"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("type: TEXTY", "columns.0(a).type"),
        ("type: VARCHAR\n    colour: red", "columns.0(a).colour"),
        ("type: VARCHAR\n    references: regions", "columns.0(a).references"),
    ],
)
def test_malformed_contract_names_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nkind: source\nprivacy: public\ndescription: x\ncolumns:\n  - name: a\n    {body}\n")
    with pytest.raises(ContractError) as info:
        parse_contract(path)
    assert str(path) in str(info.value) and key in str(info.value)


def test_contract_name_must_match_file(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("name: t\nkind: source\nprivacy: public\ndescription: x\ncolumns: []\n")
    with pytest.raises(ContractError, match="other"):
        parse_contract(path)


def test_markdown_has_a_section_and_column_row_per_table() -> None:
    contracts = load_contracts()
    text = render_markdown(contracts)
    for name, contract in contracts.items():
        assert f"## {name}\n" in text
        assert contract.description in text
    assert "| `age` | INTEGER | years | no | 0 – 120 |" in text
    assert "`regions.region_id`" in text and "discharge_not_before_admission" in text


@pytest.fixture()
def staged_stays(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = connection_with_regions()
    ingest(con, "hospitalizations", stays(tmp_path / "h.csv", f"A1,{GOOD_STAY}", f"A2,{GOOD_STAY}"))
    return con


def test_evaluate_contract_passes_a_clean_staged_table(staged_stays: duckdb.DuckDBPyConnection) -> None:
    contract = load_contract("hospitalizations")
    results = evaluate_contract(staged_stays, contract, "staged_hospitalizations")
    assert [r.check_name for r in results] == list(check_names(contract))
    assert all(r.passed and r.failing_rows == 0 for r in results), results


def test_evaluate_contract_reports_each_broken_rule_kind(staged_stays: duckdb.DuckDBPyConnection) -> None:
    staged_stays.execute("""
        INSERT INTO staged_hospitalizations VALUES
          ('A1', '2020-02-01', '2020-01-01', 'R9', 130, 'X', 'e11', 'alive', NULL),
          (NULL, '2020-01-01', '2020-01-02', 'R1', 30, 'F', 'E11', 'alive', NULL)""")
    results = {r.check_name: r for r in evaluate_contract(staged_stays, load_contract("hospitalizations"),
                                                          "staged_hospitalizations")}
    assert results["contract_schema"].passed
    assert not results["contract_primary_key"].passed and results["contract_primary_key"].examples == ("record_id=A1",)
    assert results["contract_not_null"].failing_rows == 1
    assert results["contract_values"].failing_rows == 1 and "record_id=A1" in results["contract_values"].examples
    assert results["contract_foreign_keys"].failing_rows == 1
    assert results["contract_row_rules"].failing_rows == 1


def test_evaluate_contract_flags_a_wrong_schema(staged_stays: duckdb.DuckDBPyConnection) -> None:
    staged_stays.execute("CREATE TABLE broken AS SELECT * EXCLUDE (age) FROM staged_hospitalizations")
    results = evaluate_contract(staged_stays, load_contract("hospitalizations"), "broken")
    assert not any(r.passed for r in results)
    assert "age: missing" in results[0].message


def test_check_names_only_cover_declared_rule_kinds() -> None:
    assert "contract_row_rules" not in check_names(load_contract("census"))
    assert "contract_foreign_keys" not in check_names(load_contract("regions"))
    assert "contract_row_rules" in check_names(load_contract("pollutant_readings"))
