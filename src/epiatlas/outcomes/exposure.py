"""The `pollutant_exposure` table: per region x year x pollutant mean, exceedance days and completeness.

A region's daily series is the weighted mean of its assigned stations' daily means on that day, with the
weights renormalised over the stations that reported, so one station's missing days neither bias the series
nor count as missing while another assigned station reported. Completeness = days with at least one
assigned station value / days in the year. Stations eligible for a (year, pollutant) are those with at
least one value of that pollutant in that year, so each year is computed from its own data only.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from epiatlas.config import ExposureConfig
from epiatlas.outcomes.exact import exact_sum_sql, fixed_point_sql, unit_sql
from epiatlas.outcomes.periods import checked_periods, date_in_periods_sql, days_in_year
from epiatlas.outcomes.station_assignment import (
    ASSIGNMENT_COLUMNS,
    assign_stations,
    distance_crs,
    nearest_station_km,
    region_points,
    station_points,
)
from epiatlas.outcomes.temp_tables import create_temp_table

COLUMNS = (
    "region_id", "period", "pollutant", "unit", "mean", "exceedance_days", "guideline",
    "days_with_data", "completeness", "n_stations", "assignment_method", "nearest_station_km",
)  # fmt: skip
ASSIGNMENT_TABLE = "_epiatlas_station_assignment"
GRID_TABLE = "_epiatlas_exposure_grid"


def station_assignment(con: duckdb.DuckDBPyConnection, cfg: ExposureConfig, periods: Sequence[int]) -> pd.DataFrame:
    """Assignment rows per period x pollutant: region_id, station_id, assignment_method, weight, distance_km."""
    return _assignment_and_grid(con, cfg, checked_periods(periods))[0]


def pollutant_exposure(con: duckdb.DuckDBPyConnection, cfg: ExposureConfig, periods: Sequence[int]) -> pd.DataFrame:
    """Exposure per region x period x pollutant, daily aggregation in DuckDB; `none` rows carry NULL values."""
    periods = checked_periods(periods)
    assignment, grid, crs = _assignment_and_grid(con, cfg, periods)
    if grid.empty:  # no readings at all, or no regions
        return _typed(pd.DataFrame(columns=list(COLUMNS)))
    grid = grid.assign(
        cell=np.arange(len(grid)), guideline=pd.array(grid["pollutant"].map(cfg.guidelines), dtype="Float64")
    )
    keys = ["region_id", "period", "pollutant"]
    cells = assignment.merge(grid[[*keys, "cell"]], on=keys)
    create_temp_table(con, GRID_TABLE, grid)
    create_temp_table(con, ASSIGNMENT_TABLE, cells[["cell", "station_id", "pollutant", "period", "weight"]])
    # One query per year bounds memory: the region x day series of a year is the largest intermediate.
    yearly = pd.concat([con.execute(_exposure_sql(period)).df() for period in periods], ignore_index=True)
    result = _typed(yearly.sort_values(["region_id", "period", "pollutant"], ignore_index=True))
    result.attrs["metadata"] = {
        "distance_crs": crs.to_string(),
        "assignment": f"within: stations inside the region, equal weights; else idw: up to {cfg.idw_max_stations} "
        f"nearest stations within {cfg.idw_radius_km:g} km (ties by station_id), weight distance^-{cfg.idw_power:g}; "
        "else none (NULL values)",
        "daily_series": "weighted mean of the assigned stations reporting that day (weights renormalised); a day "
        "exceeds the guideline when that unrounded mean is strictly above it",
    }
    return result


def _assignment_and_grid(
    con: duckdb.DuckDBPyConnection, cfg: ExposureConfig, periods: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame, CRS]:
    """Station assignment rows, the region x period x pollutant grid (method, n_stations, nearest km), the CRS."""
    points = region_points(con)
    crs = distance_crs(cfg, points)
    regions, stations = points.to_crs(crs), station_points(con).to_crs(crs)
    coverage = _station_coverage(con, periods)
    pollutants = [r[0] for r in con.execute("SELECT DISTINCT pollutant FROM pollutant_readings ORDER BY 1").fetchall()]
    assignments = [pd.DataFrame(columns=[*ASSIGNMENT_COLUMNS, "period", "pollutant"])]
    grids = [pd.DataFrame()]
    for period in periods:
        for pollutant in pollutants:
            reporting = coverage.get((period, pollutant), set())
            candidates = stations[stations["station_id"].isin(reporting)]
            assigned = assign_stations(regions, candidates, cfg).assign(period=period, pollutant=pollutant)
            assignments.append(assigned)
            grids.append(_grid(regions, candidates, assigned, period, pollutant))
    assignment = pd.concat(assignments, ignore_index=True).astype({"weight": float, "distance_km": float})
    grid = pd.concat(grids, ignore_index=True)
    return assignment[["period", "pollutant", *ASSIGNMENT_COLUMNS]], grid, crs


def _station_coverage(con: duckdb.DuckDBPyConnection, periods: list[int]) -> dict[tuple[int, str], set[str]]:
    """Stations with at least one value, by (year, pollutant)."""
    rows = con.execute(
        f"""
        SELECT DISTINCT year(date)::INTEGER, pollutant, station_id FROM pollutant_readings
        WHERE value IS NOT NULL AND {date_in_periods_sql("date", periods)}
        """
    ).fetchall()
    coverage: dict[tuple[int, str], set[str]] = {}
    for period, pollutant, station_id in rows:
        coverage.setdefault((period, pollutant), set()).add(station_id)
    return coverage


def _grid(
    regions: gpd.GeoSeries, candidates: gpd.GeoDataFrame, assigned: pd.DataFrame, period: int, pollutant: str
) -> pd.DataFrame:
    """One row per region for a period x pollutant: assignment method (`none` without stations) and distances."""
    per_region = assigned.groupby("region_id").agg(
        assignment_method=("assignment_method", "first"), n_stations=("station_id", "size")
    )
    grid = pd.DataFrame(index=regions.index).join(per_region)
    grid["assignment_method"] = grid["assignment_method"].fillna("none")
    grid["n_stations"] = grid["n_stations"].fillna(0).astype(int)
    grid["nearest_station_km"] = nearest_station_km(regions, candidates)
    return grid.reset_index().assign(period=period, pollutant=pollutant, days_in_period=days_in_year(period))


def _exposure_sql(period: int) -> str:
    """SQL for one year: station daily means -> weighted regional daily series -> summaries on the grid.

    Grid rows (region x period x pollutant) are keyed by an integer `cell` so the large daily aggregation
    groups on two integers instead of strings. Sums are exact fixed-point sums (`epiatlas.outcomes.exact`),
    bit-identical run after run, in units set by the pollutant's largest value of the year (weights are at
    most 1, so that bounds every term without a window over the daily rows); the daily series stays in those
    units (`scaled`) until the yearly mean. A day exceeds the guideline when sum(weight x (value -
    guideline)) > 0 over the reporting stations: the sign of (regional value - guideline) without rounding
    the regional value first, so days exactly at the guideline never count.
    """
    weight_unit = unit_sql("1")
    return f"""
        WITH readings AS (
            SELECT station_id, pollutant, date, year(date)::INTEGER AS period, value
            FROM pollutant_readings
            WHERE value IS NOT NULL AND {date_in_periods_sql("date", [period])}
        ), scales AS (
            SELECT pollutant, {unit_sql("largest")} AS value_unit,
                   {unit_sql("largest + coalesce(abs(guideline), 0)")} AS excess_unit
            FROM (SELECT pollutant, max(abs(value)) AS largest FROM readings GROUP BY pollutant)
            LEFT JOIN (SELECT DISTINCT pollutant, guideline FROM {GRID_TABLE}) USING (pollutant)
        ), daily AS (
            SELECT station_id, pollutant, date, period, {exact_sum_sql("value", "value_unit")} / count(*) AS value,
                   any_value(value_unit) AS value_unit, any_value(excess_unit) AS excess_unit
            FROM readings JOIN scales USING (pollutant)
            GROUP BY station_id, pollutant, date, period
        ), terms AS (
            SELECT a.cell, d.date, {fixed_point_sql("a.weight", weight_unit)} AS weight,
                   {fixed_point_sql("a.weight * d.value", "d.value_unit")} AS weighted,
                   {fixed_point_sql("a.weight * (d.value - g.guideline)", "d.excess_unit")} AS excess
            FROM {ASSIGNMENT_TABLE} a
            JOIN daily d ON d.station_id = a.station_id AND d.pollutant = a.pollutant AND d.period = a.period
            JOIN {GRID_TABLE} g USING (cell)
        ), region_daily AS (
            SELECT cell, date, sum(weighted)::DOUBLE / sum(weight)::DOUBLE * {weight_unit} AS scaled,
                   sum(excess) > 0 AS exceeds
            FROM terms
            GROUP BY cell, date
        ), yearly AS (
            SELECT cell, sum({fixed_point_sql("scaled", "1")})::DOUBLE / count(*) AS scaled_mean,
                   count_if(exceeds) AS exceedance_days, count(*) AS days_with_data
            FROM region_daily
            GROUP BY cell
        ), units AS (
            SELECT pollutant, min(unit) AS unit FROM pollutant_readings GROUP BY pollutant
        )
        SELECT g.region_id, g.period, g.pollutant, u.unit, y.scaled_mean / s.value_unit AS mean,
               CASE WHEN g.guideline IS NOT NULL THEN y.exceedance_days END AS exceedance_days, g.guideline,
               coalesce(y.days_with_data, 0) AS days_with_data,
               coalesce(y.days_with_data, 0) / g.days_in_period AS completeness,
               g.n_stations, g.assignment_method, g.nearest_station_km
        FROM {GRID_TABLE} g
        LEFT JOIN yearly y USING (cell)
        LEFT JOIN scales s USING (pollutant)
        LEFT JOIN units u USING (pollutant)
        WHERE g.period = {period}
    """


def _typed(result: pd.DataFrame) -> pd.DataFrame:
    """Nullable dtypes matching the contract, in contract column order."""
    types = {
        "region_id": "string", "period": "Int32", "pollutant": "string", "unit": "string", "mean": "Float64",
        "exceedance_days": "Int64", "guideline": "Float64", "days_with_data": "Int64", "completeness": "Float64",
        "n_stations": "Int64", "assignment_method": "string", "nearest_station_km": "Float64",
    }  # fmt: skip
    return result[list(COLUMNS)].astype(types)
