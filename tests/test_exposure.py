"""Pollutant exposure: station assignment (within / idw / none), daily regional series, partitions, contract."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from epiatlas.config import ExposureConfig
from epiatlas.contracts import evaluate_contract, load_contract
from epiatlas.outcomes import POLLUTANT_EXPOSURE_COLUMNS, pollutant_exposure, station_assignment
from epiatlas.outcomes.errors import ExposureInputError
from epiatlas.outcomes.station_assignment import distance_crs, idw_weights, region_points

UTM = "EPSG:32614"  # toy laid out in km on UTM zone 14N (central Mexico)
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
# region -> (centre x km, centre y km, half side km)
REGIONS = {"A": (500, 2000, 10), "B": (530, 2000, 5), "C": (700, 2000, 10)}
# station -> (x km, y km, region it lies in)
STATIONS = {"S1": (501, 2000, "A"), "S4": (499, 2001, "A"), "S2": (540, 2000, None), "S3": (530, 2020, None)}
# (station, date, pollutant, value)
READINGS = [
    ("S1", "2020-01-01", "PM25", 15.0), ("S1", "2020-01-02", "PM25", 25.0),
    ("S2", "2020-01-01", "PM25", 10.0), ("S2", "2020-01-02", "PM25", 30.0),
    ("S3", "2020-01-01", "PM25", 20.0), ("S3", "2020-01-03", "PM25", 50.0),
    ("S1", "2020-05-01", "NO2", 30.0), ("S4", "2020-05-01", "NO2", 10.0), ("S4", "2020-05-02", "NO2", 40.0),
    ("S3", "2019-07-01", "PM25", 99.0),
]  # fmt: skip
CFG = ExposureConfig(projected_crs=UTM, idw_max_stations=2, idw_radius_km=50)


def lonlat(x_km: float, y_km: float) -> tuple[float, float]:
    return TO_LONLAT.transform(x_km * 1000, y_km * 1000)


def connect(
    readings: list[tuple] = READINGS, stations: dict[str, tuple] = STATIONS
) -> duckdb.DuckDBPyConnection:
    """Connection with canonical regions (WKB, EPSG:4326), stations and readings (tables in the given row order)."""
    rows = []
    for rid, (x, y, h) in REGIONS.items():
        square = shapely.Polygon([lonlat(x + dx, y + dy) for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h))])
        rows.append((rid, *lonlat(x, y), shapely.to_wkb(square)))
    con = duckdb.connect()
    con.register("regions_df", pd.DataFrame(rows, columns=["region_id", "centroid_lon", "centroid_lat", "geometry"]))
    con.execute("CREATE TABLE regions AS SELECT * FROM regions_df")
    station_rows = pd.DataFrame(
        [(sid, *lonlat(x, y), rid) for sid, (x, y, rid) in stations.items()],
        columns=["station_id", "lon", "lat", "region_id"],
    )
    con.register("stations_df", station_rows)
    con.execute("CREATE TABLE pollutant_stations AS SELECT * FROM stations_df")
    frame = pd.DataFrame(readings, columns=["station_id", "date", "pollutant", "value"])
    con.register("readings_df", frame)
    con.execute(
        "CREATE TABLE pollutant_readings AS SELECT station_id, date::DATE AS date, pollutant, value, "
        "CASE WHEN pollutant = 'CO' THEN 'mg/m3' ELSE 'ug/m3' END AS unit FROM readings_df"
    )
    return con


def by_key(out: pd.DataFrame) -> pd.DataFrame:
    return out.set_index(["region_id", "pollutant"])


@pytest.fixture()
def exposure() -> pd.DataFrame:
    return by_key(pollutant_exposure(connect(), CFG, [2020]))


def test_idw_weights_and_distances_by_hand():
    assignment = station_assignment(connect(), CFG, [2020])
    b = assignment[(assignment["region_id"] == "B") & (assignment["pollutant"] == "PM25")].set_index("station_id")
    # S2 at 10 km, S3 at 20 km; S1 (29 km) is third and dropped by idw_max_stations=2.
    assert sorted(b.index) == ["S2", "S3"] and set(b["assignment_method"]) == {"idw"}
    assert b.loc["S2", "distance_km"] == pytest.approx(10.0, abs=1e-6)
    assert b.loc["S3", "distance_km"] == pytest.approx(20.0, abs=1e-6)
    assert b.loc["S2", "weight"] == pytest.approx((1 / 10**2) / (1 / 10**2 + 1 / 20**2))  # 0.8
    assert b.loc["S3", "weight"] == pytest.approx(0.2)


def test_within_uses_stations_inside_with_equal_weights():
    assignment = station_assignment(connect(), CFG, [2020])
    a = assignment[(assignment["region_id"] == "A") & (assignment["pollutant"] == "NO2")]
    assert set(a["assignment_method"]) == {"within"} and a["weight"].tolist() == [0.5, 0.5]
    assert sorted(a["distance_km"].round(6)) == [1.0, round(np.hypot(1, 1), 6)]


def test_idw_power_zero_distance_and_missing_neighbours():
    np.testing.assert_allclose(idw_weights(np.array([[1.0, 2.0]]), power=1), [[2 / 3, 1 / 3]])
    np.testing.assert_allclose(idw_weights(np.array([[0.0, 2.0, 0.0]]), power=2), [[0.5, 0.0, 0.5]])
    np.testing.assert_allclose(idw_weights(np.array([[2.0, np.inf], [np.inf, np.inf]]), power=2), [[1, 0], [0, 0]])


def test_weighted_daily_series_exceedance_and_completeness(exposure):
    b = exposure.loc[("B", "PM25")]
    # Daily: Jan 1 0.8*10 + 0.2*20 = 12; Jan 2 only S2 = 30; Jan 3 only S3 = 50.
    assert b["mean"] == pytest.approx((12 + 30 + 50) / 3)
    assert b["exceedance_days"] == 2  # 30 and 50 exceed 15; 12 does not
    assert b["days_with_data"] == 3 and b["completeness"] == pytest.approx(3 / 366)  # 2020 is a leap year
    assert (b["assignment_method"], b["n_stations"]) == ("idw", 2)
    assert b["nearest_station_km"] == pytest.approx(10.0, abs=1e-6)


def test_within_region_series(exposure):
    a = exposure.loc[("A", "PM25")]
    # Jan 1 equals the PM25 guideline (15) and does not exceed it; Jan 2 (25) does.
    assert (a["assignment_method"], a["n_stations"], a["mean"], a["exceedance_days"]) == ("within", 1, 20.0, 1)
    no2 = exposure.loc[("A", "NO2")]
    # May 1: (30 + 10) / 2 = 20 ; May 2: only S4 = 40. NO2 guideline 25.
    assert (no2["mean"], no2["exceedance_days"], no2["n_stations"]) == (30.0, 1, 2)


def test_region_beyond_radius_gets_nulls_not_values(exposure):
    c = exposure.loc[("C", "PM25")]
    assert c["assignment_method"] == "none" and c["n_stations"] == 0
    assert pd.isna(c["mean"]) and pd.isna(c["exceedance_days"])
    assert c["completeness"] == 0 and c["nearest_station_km"] == pytest.approx(160.0, abs=1e-6)


def test_smaller_radius_drops_far_stations_then_everything():
    out = by_key(pollutant_exposure(connect(), CFG.model_copy(update={"idw_radius_km": 15}), [2020]))
    assert (out.loc[("B", "PM25"), "n_stations"], out.loc[("B", "PM25"), "mean"]) == (1, 20.0)  # S2 only
    out = by_key(pollutant_exposure(connect(), CFG.model_copy(update={"idw_radius_km": 5}), [2020]))
    assert out.loc[("B", "PM25"), "assignment_method"] == "none" and pd.isna(out.loc[("B", "PM25"), "mean"])


def test_every_region_period_pollutant_present_in_order():
    out = pollutant_exposure(connect(), CFG, [2019, 2020])
    keys = list(zip(out["region_id"], out["period"], out["pollutant"]))
    assert keys == [(r, p, q) for r in "ABC" for p in (2019, 2020) for q in ("NO2", "PM25")]
    assert tuple(out.columns) == POLLUTANT_EXPOSURE_COLUMNS


def test_station_reporting_only_in_another_year_is_not_assigned():
    out = by_key(pollutant_exposure(connect(), CFG, [2019]))
    assert out.loc[("B", "PM25"), "mean"] == 99.0 and out.loc[("B", "PM25"), "n_stations"] == 1
    assert out.loc[("A", "PM25"), "assignment_method"] == "idw"  # S3 at ~36 km; S1 did not report in 2019
    assert out.loc[("A", "NO2"), "assignment_method"] == "none" and pd.isna(out.loc[("A", "NO2"), "nearest_station_km"])


def test_partition_independence():
    both = pollutant_exposure(connect(), CFG, [2019, 2020])
    alone = pollutant_exposure(connect(), CFG, [2020])
    pd.testing.assert_frame_equal(both[both["period"] == 2020].reset_index(drop=True), alone)


def test_output_passes_its_contract():
    con = connect()
    con.register("out_df", pollutant_exposure(con, CFG, [2019, 2020]))
    con.execute("CREATE TABLE out AS SELECT * FROM out_df")
    failed = [r for r in evaluate_contract(con, load_contract("pollutant_exposure"), "out") if not r.passed]
    assert failed == []


def test_metadata_names_the_distance_crs(exposure):
    assert exposure.attrs["metadata"]["distance_crs"] == UTM


def test_utm_zone_is_estimated_when_no_crs_is_configured():
    assert distance_crs(ExposureConfig(), region_points(connect())).to_epsg() == 32614


def test_distances_are_in_km_in_a_crs_measured_in_feet():
    # EPSG:2229 (California zone 5, US survey feet) is far from the toy, but a 10 km gap stays ~10 km.
    cfg = CFG.model_copy(update={"projected_crs": "EPSG:2229"})
    b = station_assignment(connect(), cfg, [2020]).query("region_id == 'B' and pollutant == 'PM25'")
    assert b.set_index("station_id").loc["S2", "distance_km"] == pytest.approx(10.0, rel=0.05)


def test_geographic_crs_is_rejected():
    with pytest.raises(ExposureInputError, match="not a projected CRS"):
        distance_crs(ExposureConfig(projected_crs="EPSG:4326"), region_points(connect()))


def test_missing_centroid_falls_back_to_a_point_inside_the_geometry():
    con = connect()
    con.execute("UPDATE regions SET centroid_lon = NULL WHERE region_id = 'C'")
    point = region_points(con).to_crs(UTM).loc["C"]
    assert point.x / 1000 == pytest.approx(700, abs=1.0) and point.y / 1000 == pytest.approx(2000, abs=1.0)


# Three stations inside A (equal weights 1/3) and three around B at unequal distances (IDW weights that are
# not short decimals), for readings exactly at the PM25 guideline (15).
AT_GUIDELINE_STATIONS = {
    "A1": (501, 2000, "A"), "A2": (499, 2001, "A"), "A3": (500, 1998, "A"),
    "B1": (541, 2000, None), "B2": (530, 2013, None), "B3": (517, 1991, None),
}  # fmt: skip
CFG_THREE = CFG.model_copy(update={"idw_max_stations": 3})


@pytest.mark.parametrize(
    ("values", "exceeds"),
    [
        ((15.0, 15.0, 15.0), False),  # every station exactly at the guideline
        ((14.0, 15.0, 16.0), False),  # A: mean exactly 15; B: B1 (14) is nearer than B3 (16), so below 15
        ((15.0, 15.0, np.nextafter(15.0, 16.0)), True),  # the smallest excess above 15 still counts
    ],
)
def test_exceedance_compares_the_true_regional_value_with_the_guideline(values, exceeds):
    days = [f"2020-03-{d:02d}" for d in range(1, 6)]
    readings = [(f"{r}{i + 1}", day, "PM25", v) for r in "AB" for i, v in enumerate(values) for day in days]
    out = by_key(pollutant_exposure(connect(readings, AT_GUIDELINE_STATIONS), CFG_THREE, [2020]))
    a, b = out.loc[("A", "PM25")], out.loc[("B", "PM25")]
    assert (a["assignment_method"], a["n_stations"], b["assignment_method"], b["n_stations"]) == ("within", 3, "idw", 3)
    assert a["days_with_data"] == b["days_with_data"] == len(days)
    assert a["exceedance_days"] == b["exceedance_days"] == (len(days) if exceeds else 0)


# P and Q share coordinates 20 km from B and tie for B's second (last) IDW slot behind R (10 km).
TIED_STATIONS = {
    "T1": (500, 2030, None), "Q": (530, 2020, None), "R": (540, 2000, None), "P": (530, 2020, None),
    "T2": (560, 1990, None),
}  # fmt: skip
TIED_READINGS = [(s, "2020-03-01", "PM25", v) for s, v in zip(TIED_STATIONS, (5.0, 30.0, 10.0, 20.0, 7.0))]


@pytest.mark.parametrize("seed", range(6))
def test_stations_tied_for_the_last_slot_are_chosen_by_station_id_whatever_the_row_order(seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(list(TIED_STATIONS)) if seed else list(TIED_STATIONS)
    stations = {sid: TIED_STATIONS[sid] for sid in order}
    readings = [TIED_READINGS[i] for i in rng.permutation(len(TIED_READINGS))]
    con = connect(readings, stations)
    b = station_assignment(con, CFG, [2020]).query("region_id == 'B'")
    assert b["station_id"].tolist() == ["R", "P"]  # distance first, then the smaller station_id
    assert b["distance_km"].iloc[1] == pytest.approx(20.0, abs=1e-6)
    out = by_key(pollutant_exposure(con, CFG, [2020]))
    assert out.loc[("B", "PM25"), "mean"] == pytest.approx(0.8 * 10.0 + 0.2 * 20.0)


def test_tiny_concentrations_keep_their_relative_precision():
    # Values far below any fixed number of decimals (1e-9 mg/m3): sums are scaled before going to fixed point.
    readings = [("S1", "2020-05-01", "CO", 3e-9), ("S4", "2020-05-01", "CO", 5e-9), ("S1", "2020-05-02", "CO", 1e-9)]
    a = by_key(pollutant_exposure(connect(readings), CFG, [2020])).loc[("A", "CO")]
    assert a["assignment_method"] == "within" and a["days_with_data"] == 2
    assert a["mean"] == pytest.approx(((3e-9 + 5e-9) / 2 + 1e-9) / 2, rel=1e-15)
    assert a["exceedance_days"] == 0
