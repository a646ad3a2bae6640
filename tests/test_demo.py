"""The synthetic demo: files, config, determinism, geography, census, planted truth and injected defects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from epiatlas.config import load_config
from epiatlas.demo import DemoSpec, build_world, generate_demo
from epiatlas.demo.population import AGE_GROUPS
from epiatlas.demo.socioeconomic import FACTORS

ICD10 = r"^[A-Z][0-9]{2}[0-9A-Z]{0,4}$"  # as in data_contracts/hospitalizations.yaml
HASHED = ["censo.csv", "egresos.parquet", "estaciones.csv", "mediciones.parquet",
          "indicadores_socioeconomicos.csv", "truth_region_period.parquet", "truth.json"]  # fmt: skip


@pytest.fixture(scope="module")
def demo(small_demo: Path) -> Path:
    """Folder of the session's small demo."""
    return small_demo.parent


@pytest.fixture(scope="module")
def truth(demo: Path) -> dict:
    """The demo's truth.json."""
    return json.loads((demo / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def records(demo: Path) -> pd.DataFrame:
    """The demo's hospitalization records."""
    return pd.read_parquet(demo / "egresos.parquet")


@pytest.fixture(scope="module")
def municipalities(demo: Path) -> gpd.GeoDataFrame:
    """The demo's municipalities."""
    return gpd.read_file(demo / "regions.gpkg", layer="municipios")


def read_csv(path: Path) -> pd.DataFrame:
    """Read a demo CSV keeping codes as text (leading zeros)."""
    return pd.read_csv(path, dtype={"cve_mun": str, "id_estacion": str})


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of the data files that must be reproducible."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in HASHED}


def test_files_and_columns_have_the_expected_formats(demo: Path, records: pd.DataFrame) -> None:
    assert "SYNTHETIC" in (demo / "README.txt").read_text(encoding="utf-8")
    assert list(read_csv(demo / "censo.csv").columns) == ["cve_mun", "anio", "grupo_edad", "sexo", "poblacion"]
    assert list(read_csv(demo / "estaciones.csv").columns) == ["id_estacion", "nombre", "longitud", "latitud"]
    indicators = read_csv(demo / "indicadores_socioeconomicos.csv")
    assert list(indicators.columns[:2]) == ["cve_mun", "anio"] and len(indicators.columns) == 14
    schema = pq.read_schema(demo / "egresos.parquet")
    assert schema.names == ["folio", "fecha_ingreso", "fecha_egreso", "cve_mun_res", "edad", "sexo",
                            "diag_principal", "motivo_egreso", "uci"]  # fmt: skip
    assert str(schema.field("fecha_ingreso").type) == "date32[day]"
    readings_schema = pq.read_schema(demo / "mediciones.parquet")
    assert readings_schema.names == ["id_estacion", "fecha", "contaminante", "valor", "unidad"]
    assert str(readings_schema.field("fecha").type) == "date32[day]"
    assert records["folio"].is_unique
    assert set(records["sexo"].dropna()) == {"H", "M"}
    assert set(records["motivo_egreso"]) == {"1", "2", "3", "4"}
    assert set(records["uci"]) == {"S", "N"}
    assert records["edad"].between(0, 105).all()
    diabetes_share = records["diag_principal"].str.match(r"^E1[0-4]").mean()
    assert 0.20 <= diabetes_share <= 0.30


def test_config_loads_and_points_at_the_files(small_demo: Path) -> None:
    cfg = load_config(small_demo)
    assert cfg.synthetic and cfg.name == "epiatlas demo (synthetic data)"
    assert all(source.path.is_file() for source in cfg.sources.configured().values())
    assert cfg.warehouse.root == small_demo.parent.resolve() / "warehouse"
    assert cfg.periods.keys == ["2018", "2019", "2020"]
    hosp = cfg.sources.hospitalizations
    assert hosp.recode["sex"] == {"H": "M", "M": "F"} and hosp.recode["icu"] == {"S": "true", "N": "false"}
    assert hosp.recode["discharge_status"]["2"] == "death"
    assert cfg.sources.pollutant_readings.recode["pollutant"] == {"PM2.5": "PM25"}
    assert cfg.exposure.projected_crs == "EPSG:6372"
    raw = small_demo.read_text(encoding="utf-8")
    assert str(small_demo.parent) not in raw, "source paths must be relative"


def test_same_seed_gives_identical_files_and_another_seed_differs(demo: Path, tmp_path: Path) -> None:
    generate_demo(tmp_path / "again", DemoSpec.small())
    generate_demo(tmp_path / "other", DemoSpec.small(seed=7))
    original = file_hashes(demo)
    assert file_hashes(tmp_path / "again") == original
    other = file_hashes(tmp_path / "other")
    assert all(other[name] != original[name] for name in HASHED)


def test_municipalities_tile_their_states_with_unique_codes(municipalities: gpd.GeoDataFrame) -> None:
    assert municipalities.crs.to_epsg() == 4326
    assert len(municipalities) == DemoSpec.small().n_municipalities
    assert municipalities["CVE_MUN"].is_unique
    assert municipalities["CVE_MUN"].str.fullmatch(r"\d{5}").all()
    assert (municipalities["CVE_MUN"].str[:2] == municipalities["CVE_ENT"]).all()
    assert municipalities["CVE_ENT"].nunique() == 32
    assert municipalities.is_valid.all() and municipalities.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    states = municipalities.dissolve("CVE_ENT")
    projected = municipalities.to_crs("EPSG:6372")
    state_area = states.to_crs("EPSG:6372").area
    assert np.allclose(projected.area.groupby(municipalities["CVE_ENT"]).sum(), state_area, rtol=0.01)
    # Cells do not overlap: the sum of areas equals the area of the union.
    union_area = shapely.union_all(projected.geometry.values).area
    assert projected.area.sum() == pytest.approx(union_area, rel=0.01)
    points = municipalities.representative_point()
    host = states.geometry.reindex(municipalities["CVE_ENT"]).values
    assert shapely.contains(host, points.values).all()


def test_census_totals_pyramid_and_growth(demo: Path) -> None:
    census = read_csv(demo / "censo.csv")
    spec = DemoSpec.small()
    assert len(census) == spec.n_municipalities * spec.n_years * len(AGE_GROUPS) * 2
    totals = census.groupby("anio")["poblacion"].sum()
    assert totals.loc[2020] == pytest.approx(spec.population_2020, rel=0.03)
    assert totals.is_monotonic_increasing
    by_age = census.groupby("grupo_edad")["poblacion"].sum() / census["poblacion"].sum()
    assert 0.20 < by_age[["0-4", "5-9", "10-14"]].sum() < 0.32
    assert 0.05 < by_age[["65-69", "70-74", "75-79", "80-84", "85+"]].sum() < 0.12
    assert by_age["85+"] < by_age["0-4"]
    by_sex = census.groupby("sexo")["poblacion"].sum()
    assert 0.90 < by_sex["H"] / by_sex["M"] < 1.0
    assert (census["poblacion"] >= 0).all()


def test_diabetes_records_follow_the_poisson_means(demo: Path, records: pd.DataFrame, truth: dict) -> None:
    region_period = pd.read_parquet(demo / truth["region_period_truth"])
    diabetes = records[records["diag_principal"].str.match(r"^E1[0-4][0-9A-Z]?$")]
    assert len(diabetes) == truth["rows"]["diabetes_records_sampled"] - truth[
        "injected_defects_on_diabetes_records"]["malformed_icd10"]  # fmt: skip
    observed = (
        diabetes.assign(year=pd.to_datetime(diabetes["fecha_ingreso"]).dt.year)
        .groupby(["cve_mun_res", "year"]).size()
        .reindex(pd.MultiIndex.from_frame(region_period[["region_id", "year"]]), fill_value=0)
        .to_numpy()
    )  # fmt: skip
    mu = region_period["expected_cases_true"].to_numpy()
    assert observed.sum() / mu.sum() == pytest.approx(1.0, abs=0.03)
    dispersion = ((observed - mu) ** 2 / mu).sum() / len(mu)
    assert 0.8 < dispersion < 1.25
    # Indirect standardisation: expected and true means agree within each year; RR is their ratio.
    sums = region_period.groupby("year")[["expected_cases_true", "expected_cases_indirect"]].sum()
    assert np.allclose(sums["expected_cases_true"], sums["expected_cases_indirect"])
    ratio = region_period["expected_cases_true"] / region_period["expected_cases_indirect"]
    assert np.allclose(region_period["true_relative_risk"], ratio)
    assert region_period["true_relative_risk"].std() > 0.2


def test_indicators_carry_the_planted_factor_structure(demo: Path, truth: dict) -> None:
    indicators = read_csv(demo / "indicadores_socioeconomicos.csv")
    values = indicators.iloc[:, 2:]
    assert ((values > 0) & (values < 100)).all().all()
    k = len(truth["factor_model"]["factors"])
    eigenvalues = np.sort(np.linalg.eigvalsh(np.corrcoef(values.to_numpy().T)))[::-1]
    assert eigenvalues[:k].sum() / eigenvalues.sum() > 0.7
    assert eigenvalues[k - 1] > 1.5 * eigenvalues[k]
    region_period = pd.read_parquet(demo / truth["region_period_truth"])
    merged = indicators.merge(region_period, left_on=["cve_mun", "anio"], right_on=["region_id", "year"])
    assert merged["analf"].corr(merged[f"factor_{FACTORS[0]}"], method="spearman") > 0.6
    assert merged["sin_salud"].corr(merged[f"factor_{FACTORS[2]}"], method="spearman") > 0.6


def test_readings_have_gaps_and_the_injected_implausible_values(demo: Path, truth: dict) -> None:
    readings = pd.read_parquet(demo / "mediciones.parquet")
    stations = read_csv(demo / "estaciones.csv")
    spec = DemoSpec.small()
    assert set(readings["contaminante"]) == {"PM2.5", "PM10", "O3", "NO2", "SO2", "CO"}
    assert set(readings.loc[readings["contaminante"] == "CO", "unidad"]) == {"mg/m³"}
    assert set(readings.loc[readings["contaminante"] != "CO", "unidad"]) == {"µg/m³"}
    assert (readings["valor"] < 0).sum() == truth["injected_implausible_readings"]["negative"]
    assert (readings["valor"] == 9999).sum() == truth["injected_implausible_readings"]["sentinel_9999"]
    n_days = (pd.Timestamp(f"{spec.years[-1] + 1}-01-01") - pd.Timestamp(f"{spec.first_year}-01-01")).days
    per_series = readings.groupby(["id_estacion", "contaminante"]).size()
    assert (per_series < n_days).all(), "every series has missing days"
    first_day = pd.to_datetime(readings.groupby("id_estacion")["fecha"].min())
    assert (first_day > pd.Timestamp(f"{spec.first_year}-02-01")).any(), "some stations start later"
    assert set(stations["id_estacion"]) == set(readings["id_estacion"]) and len(stations) == spec.n_stations
    mexico = shapely.union_all(gpd.read_file(demo / "regions.gpkg", layer="municipios").geometry.values)
    assert shapely.contains_xy(mexico, stations["longitud"], stations["latitud"]).all()


def test_injected_record_defects_match_truth(
    records: pd.DataFrame, municipalities: gpd.GeoDataFrame, truth: dict
) -> None:
    defects = truth["injected_defects"]
    before = pd.to_datetime(records["fecha_egreso"]) < pd.to_datetime(records["fecha_ingreso"])
    unknown = ~records["cve_mun_res"].isin(municipalities["CVE_MUN"])
    malformed = ~records["diag_principal"].str.fullmatch(ICD10)
    no_sex = records["sexo"].isna()
    assert before.sum() == defects["discharge_before_admission"] > 0
    assert unknown.sum() == defects["unknown_municipality"] > 0
    assert malformed.sum() == defects["malformed_icd10"] > 0
    assert no_sex.sum() == defects["missing_sex"] > 0
    assert (before | unknown | malformed | no_sex).mean() < 0.01


def test_default_spec_meets_the_full_demo_sizes() -> None:
    spec = DemoSpec()
    assert spec.n_municipalities >= 2000 and spec.n_years >= 10 and spec.n_stations >= 100
    world = build_world(spec)
    assert len(world.municipalities) == spec.n_municipalities
    assert world.expected_records() >= 1_000_000
    assert world.population[:, spec.years.index(2020)].sum() == pytest.approx(126e6, rel=0.02)
