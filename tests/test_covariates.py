"""The user's own covariates: tables named in the config, validated and quarantined like every source."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import geopandas as gpd
import pandas as pd
import pytest
import yaml

from epiatlas.config import EpiatlasConfig, dump_config, load_config
from epiatlas.contracts import evaluate_contract
from epiatlas.covariates import CovariateTableConfig
from epiatlas.covariates.source import (
    covariate_contract,
    covariate_settings,
    covariate_source_config,
    ingest_covariates,
)
from epiatlas.errors import ConfigError, SchemaMismatchError
from epiatlas.publish import publish_catalog, warehouse_for
from tests.ingest_fixtures import connection_with_regions, quarantine_rows, write_csv

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_CONFIG = {"sources": {"regions": {"path": "regions.gpkg"},
                              "hospitalization_counts": {"path": "counts.csv"}},
                  "periods": {"start": 2020, "end": 2021}}


def region_table(path: Path, **extra: object) -> CovariateTableConfig:
    """A region-level table: `cve` -> region, `pib` -> gdp (>= 0, MXN), `density` (persons per km2)."""
    return CovariateTableConfig.model_validate({
        "path": path, "region_column": "cve",
        "variables": {
            "gdp": {"column": "pib", "unit": "MXN per person", "description": "GDP per person.", "min": 0},
            "density": {"unit": "persons per km2", "description": "Population density.", "min": 0},
        },
    } | extra)


def period_table(path: Path) -> CovariateTableConfig:
    """A region x year table: `hospitals` (whole numbers, not null) and `uninsured` (percent)."""
    return CovariateTableConfig.model_validate({
        "path": path, "period_column": "anio",
        "variables": {
            "hospitals": {"unit": "hospitals", "description": "Public hospitals.", "integer": True, "min": 0,
                          "nullable": False},
            "uninsured": {"unit": "percent", "description": "Share without health insurance.", "min": 0, "max": 100},
        },
    })


def ingested_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    """Every row of `table`, in its stored order."""
    return con.execute(f"SELECT * FROM {table}").fetchall()


# --- ingest through the library ----------------------------------------------------------------------------------

def test_region_table_stages_clean_rows_and_quarantines_each_bad_row_with_its_rule(tmp_path: Path) -> None:
    con = connection_with_regions("R1", "R2", "R3", "R4")
    path = write_csv(tmp_path / "cov.csv", "cve,pib,density",
                     "R1,100.5,20", "R2,abc,30", "R3,-5,10", "R9,1,1", "R1,2,2", "R4,7,")
    cfg = region_table(path)
    result = ingest_covariates(con, "economy", cfg)
    assert (result.source, result.accepted_table) == ("covariates_economy", "staged_covariates_economy")
    assert result.rows_read == 6 == result.rows_accepted + result.rows_quarantined
    assert ingested_rows(con, result.accepted_table) == [("R1", 100.5, 20.0), ("R4", 7.0, None)]
    bad = {row["row_number"]: row for row in quarantine_rows(con, result)}
    assert {n: (r["rules"], r["columns"]) for n, r in bad.items()} == {
        2: ("type", "gdp"), 3: ("range", "gdp"), 4: ("foreign_key", "region_id"), 5: ("primary_key", "region_id"),
    }
    assert "gdp: 'abc' is not a valid DOUBLE" in bad[2]["message"]
    assert "gdp: '-5.0' is outside [0, inf] MXN per person" in bad[3]["message"]
    assert "'R9' not found in regions.region_id" in bad[4]["message"]
    assert {r["source"] for r in bad.values()} == {"covariates_economy"}
    assert json.loads(bad[2]["raw_values"]) == {"cve": "R2", "pib": "abc", "density": "30"}
    contract = covariate_contract("economy", cfg)
    results = evaluate_contract(con, contract, result.accepted_table)
    assert results and all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_region_period_table_keys_on_region_and_year(tmp_path: Path) -> None:
    con = connection_with_regions("R1", "R2")
    path = write_csv(tmp_path / "cov.csv", "region_id,anio,hospitals,uninsured",
                     "R1,2020,3,10", "R1,2021,4,11", "R2,2020,1,", "R2,2020,2,5", "R2,20x1,1,5",
                     "R2,2021,1.5,5", "R2,2022,,5", "R2,2023,1,101")
    result = ingest_covariates(con, "health", period_table(path))
    assert result.rows_read == 8 == result.rows_accepted + result.rows_quarantined
    assert ingested_rows(con, result.accepted_table) == [
        ("R1", 2020, 3.0, 10.0), ("R1", 2021, 4.0, 11.0), ("R2", 2020, 1.0, None)]
    assert [(r["row_number"], r["rules"], r["columns"]) for r in quarantine_rows(con, result)] == [
        (4, "primary_key", "region_id+period"), (5, "type", "period"), (6, "integer", "hospitals"),
        (7, "not_null", "hospitals"), (8, "range", "uninsured")]


def test_parquet_table_with_typed_columns_is_ingested_the_same_way(tmp_path: Path) -> None:
    con = connection_with_regions("R1", "R2")
    path = tmp_path / "cov.parquet"
    pd.DataFrame({"region_id": ["R1", "R2", "R5"], "anio": [2020, 2020, 2020], "hospitals": [2.0, 3.0, 1.0],
                  "uninsured": [50.0, 150.0, 1.0]}).to_parquet(path)
    result = ingest_covariates(con, "health", period_table(path))
    assert ingested_rows(con, result.accepted_table) == [("R1", 2020, 2.0, 50.0)]
    assert [r["rules"] for r in quarantine_rows(con, result)] == ["range", "foreign_key"]


def test_contract_is_built_from_the_config_with_units_ranges_and_keys(tmp_path: Path) -> None:
    contract = covariate_contract("health", period_table(tmp_path / "c.csv"))
    assert (contract.name, contract.kind, contract.privacy) == ("covariates_health", "source", "public")
    assert contract.primary_key == ["region_id", "period"]
    assert contract.column("region_id").references == "regions.region_id"
    hospitals = contract.column("hospitals")
    assert (hospitals.type, hospitals.unit, hospitals.integer, hospitals.min, hospitals.nullable) == (
        "DOUBLE", "hospitals", True, 0, False)
    assert covariate_contract("economy", region_table(tmp_path / "c.csv")).primary_key == ["region_id"]


def test_missing_file_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cov.csv", "cve,gdp,density", "R1,1,2")
    with pytest.raises(SchemaMismatchError) as info:
        ingest_covariates(connection_with_regions(), "economy", region_table(path))
    assert "cov.csv" in str(info.value) and "gdp (as 'pib')" in str(info.value)


def test_extra_file_columns_are_an_error_unless_ignored(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cov.csv", "cve,pib,density,notes", "R1,1,2,x")
    with pytest.raises(SchemaMismatchError, match=r"cov\.csv.*\['notes'\]"):
        ingest_covariates(connection_with_regions(), "economy", region_table(path))
    ignored = ingest_covariates(connection_with_regions(), "economy", region_table(path, extra_columns="ignore"))
    assert ignored.rows_accepted == 1


# --- config ------------------------------------------------------------------------------------------------------

def load_with_covariates(tmp_path: Path, covariates: object) -> EpiatlasConfig:
    """A minimal config with `covariates`, written to and loaded from tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(MINIMAL_CONFIG | {"covariates": covariates}), encoding="utf-8")
    return load_config(path)


def test_config_anchors_covariate_paths_at_the_config_folder(tmp_path: Path) -> None:
    cfg = load_with_covariates(tmp_path, {"economy": {
        "path": "data/cov.csv", "variables": {"gdp": {"unit": "MXN", "description": "GDP."}}}})
    assert cfg.covariates["economy"].path == (tmp_path / "data" / "cov.csv").resolve()
    assert load_with_covariates(tmp_path, {}).covariates == {}


@pytest.mark.parametrize(
    ("covariates", "fragment"),
    [
        ({"economy": {"path": "c.csv", "variables": {"gdp": {"unit": "MXN", "description": "GDP.", "units": "x"}}}},
         "covariates.economy.variables.gdp.units"),
        ({"economy": {"path": "c.csv", "colour": "red", "variables": {"gdp": {"unit": "MXN", "description": "G"}}}},
         "covariates.economy.colour"),
        ({"economy": {"path": "c.csv", "variables": {"GDP": {"unit": "MXN", "description": "GDP."}}}},
         "'GDP' is not a lower-case identifier"),
        ({"economy": {"path": "c.csv", "variables": {"period": {"unit": "y", "description": "Y."}}}},
         "'period' is a key column"),
        ({"economy": {"path": "c.csv", "variables": {"rowid": {"unit": "n", "description": "N."}}}},
         "'rowid' is reserved"),
        ({"Economy-2": {"path": "c.csv", "variables": {"gdp": {"unit": "MXN", "description": "GDP."}}}},
         "'Economy-2' is not a lower-case identifier"),
        ({"economy": {"path": "c.csv", "variables": {}}}, "covariates.economy.variables"),
        ({"economy": {"path": "c.csv", "variables": {"gdp": {"description": "GDP."}}}},
         "covariates.economy.variables.gdp.unit"),
        ({"economy": {"path": "c.csv", "variables": {"gdp": {"unit": "MXN", "description": "G", "min": 5, "max": 1}}}},
         "min (5) is above max (1)"),
        ({"economy": {"path": "c.csv", "region_column": "cve",
                      "variables": {"gdp": {"column": "cve", "unit": "MXN", "description": "GDP."}}}},
         "file column(s) ['cve'] are read twice"),
        ({"economy": {"path": "c.csv", "variables": {"gdp": {"unit": "MXN", "description": "G", "min": "0"}}}},
         "covariates.economy.variables.gdp.min"),
    ],
    ids=["unknown_variable_key", "unknown_table_key", "upper_case_variable", "key_column_as_variable", "reserved",
         "bad_table_name", "no_variables", "no_unit", "min_above_max", "column_read_twice", "text_bound"],
)
def test_config_errors_name_the_key_and_the_rule(tmp_path: Path, covariates: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_with_covariates(tmp_path, covariates)
    message = " ".join(str(info.value).split())
    assert fragment in message, message


def test_a_non_tabular_file_is_a_config_error_naming_the_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"covariates\.economy: .*cov\.gpkg.*CSV or Parquet"):
        covariate_source_config("economy", region_table(tmp_path / "cov.gpkg"))


def test_a_run_config_without_the_table_is_a_config_error_listing_the_tables(tmp_path: Path) -> None:
    cfg = load_with_covariates(tmp_path, {"economy": {
        "path": "cov.csv", "variables": {"gdp": {"unit": "MXN", "description": "GDP."}}}})
    assert covariate_settings(cfg, "economy") is cfg.covariates["economy"]
    with pytest.raises(ConfigError, match=r"no covariate table 'health'.*\['economy'\]"):
        covariate_settings(cfg, "health")


def test_readme_covariates_example_validates(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Your own covariates", 1)[1]
    example = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    cfg = load_with_covariates(tmp_path, example["covariates"])
    keys = {name: covariate_contract(name, table).primary_key for name, table in cfg.covariates.items()}
    assert sorted(keys.values()) == [["region_id"], ["region_id", "period"]], "show both table shapes"


# --- Dagster -----------------------------------------------------------------------------------------------------

def test_covariate_asset_materializes_on_the_small_demo_with_its_checks(small_demo: Path, tmp_path: Path) -> None:
    demo = load_config(small_demo)
    region_ids = sorted(gpd.read_file(demo.sources.regions.path, layer=demo.sources.regions.layer)["CVE_MUN"])
    rows = [f"{rid},{year},{i % 7 + 0.5}" for i, rid in enumerate(region_ids) for year in demo.periods.keys]
    covariates = write_csv(tmp_path / "covariables.csv", "cve_mun,anio,clinicas", *rows, "XX999,2018,1")
    cfg = demo.model_copy(update={
        "warehouse": demo.warehouse.model_copy(update={"root": tmp_path / "wh"}),
        "covariates": {"clinics": CovariateTableConfig.model_validate({
            "path": covariates, "region_column": "cve_mun", "period_column": "anio",
            "variables": {"clinics_per_10k": {"column": "clinicas", "unit": "clinics per 10,000 persons",
                                              "description": "Primary-care clinics per 10,000 persons.", "min": 0}},
        })},
    })
    config = tmp_path / "config.yaml"
    dump_config(cfg, config)
    from orchestration.definitions import build_definitions  # the code location imports every asset group

    defs = build_definitions(config)
    selection = [dg.AssetKey(k) for k in ("regions", "covariates_clinics", "quarantine_summary")]
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, asset_selection=selection)
    assert result.success
    mats = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    meta = mats["covariates_clinics"]
    assert (meta["rows_read"].value, meta["rows_quarantined"].value) == (len(rows) + 1, 1)
    assert meta["dagster/row_count"].value == len(rows)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
              if e.asset_key == dg.AssetKey("covariates_clinics")}
    assert "rows_reconcile" in checks and len(checks) > 1 and all(checks.values()), checks
    with warehouse_for(load_config(config)).connect(["covariates_clinics", "quarantine_summary"]) as con:
        assert con.execute("SELECT count(*), count(DISTINCT region_id) FROM covariates_clinics").fetchone() == (
            len(rows), len(region_ids))
        summary = con.execute("SELECT source, rules, rows FROM quarantine_summary "
                              "WHERE source = 'covariates_clinics'").fetchall()
    assert summary == [("covariates_clinics", "foreign_key", 1)]
    published = publish_catalog(load_config(config))
    with duckdb.connect(str(published.path), read_only=True) as catalog:
        assert catalog.execute("SELECT count(*) FROM covariates_clinics").fetchone()[0] == len(rows)
