"""Assign monitoring stations to regions: stations inside the region, else IDW of the nearest within a radius.

Distances are taken in a projected CRS between the region's centroid and each station, in km, never in degrees.
"""

from __future__ import annotations

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy.spatial import cKDTree

from epiatlas.config import ExposureConfig
from epiatlas.outcomes.errors import ExposureInputError

WGS84 = "EPSG:4326"
ASSIGNMENT_COLUMNS = ["region_id", "station_id", "assignment_method", "weight", "distance_km"]


def region_points(con: duckdb.DuckDBPyConnection) -> gpd.GeoSeries:
    """Region locations in EPSG:4326 indexed by region_id: the stored centroid, else a representative point."""
    regions = con.execute(
        "SELECT region_id, centroid_lon, centroid_lat, geometry FROM regions ORDER BY region_id"
    ).df()
    points = gpd.points_from_xy(regions["centroid_lon"], regions["centroid_lat"])
    missing = regions["centroid_lon"].isna() | regions["centroid_lat"].isna()
    if missing.any():
        blobs = [None if b is None else bytes(b) for b in regions.loc[missing, "geometry"]]
        shapes = shapely.from_wkb(np.array(blobs, dtype=object))
        if shapely.is_missing(shapes).any() or shapely.is_empty(shapes).any():
            raise ExposureInputError("regions: a region has neither a centroid nor a usable geometry")
        points[missing.to_numpy()] = shapely.point_on_surface(shapes)
    return gpd.GeoSeries(points, index=pd.Index(regions["region_id"], name="region_id"), crs=WGS84)


def station_points(con: duckdb.DuckDBPyConnection) -> gpd.GeoDataFrame:
    """Stations (station_id, region_id) with point geometry in EPSG:4326, ordered by station_id."""
    stations = con.execute("SELECT station_id, region_id, lon, lat FROM pollutant_stations ORDER BY station_id").df()
    if stations[["lon", "lat"]].isna().any().any():
        raise ExposureInputError("pollutant_stations: lon/lat must not be NULL")
    return gpd.GeoDataFrame(
        stations[["station_id", "region_id"]], geometry=gpd.points_from_xy(stations["lon"], stations["lat"]), crs=WGS84
    )


def distance_crs(cfg: ExposureConfig, regions: gpd.GeoSeries) -> CRS:
    """The configured projected CRS, else the UTM zone estimated from the regions."""
    crs = CRS.from_user_input(cfg.projected_crs) if cfg.projected_crs else regions.estimate_utm_crs()
    if not crs.is_projected:
        raise ExposureInputError(f"exposure.projected_crs: {crs.name} is not a projected CRS (distances need metres)")
    return crs


def _xy_km(points: gpd.GeoSeries) -> np.ndarray:
    """Coordinates of projected points in kilometres, shape (n, 2), whatever the CRS's linear unit."""
    metres_per_unit = points.crs.axis_info[0].unit_conversion_factor
    return shapely.get_coordinates(points.to_numpy()) * metres_per_unit / 1000.0


def assign_stations(regions: gpd.GeoSeries, stations: gpd.GeoDataFrame, cfg: ExposureConfig) -> pd.DataFrame:
    """Assignment rows (region_id, station_id, assignment_method, weight, distance_km) for projected inputs.

    A region with stations inside it averages them with equal weights (`within`); otherwise up to
    `idw_max_stations` nearest stations within `idw_radius_km` (ties by station_id) get weights proportional
    to distance^-power (`idw`); a region with neither gets no rows. Weights sum to 1 per region.
    """
    if stations.empty or regions.empty:
        return pd.DataFrame(columns=ASSIGNMENT_COLUMNS)
    region_ids, region_xy = regions.index.to_numpy(), _xy_km(regions)
    station_ids, station_xy = stations["station_id"].to_numpy(), _xy_km(stations.geometry)
    within = _within_rows(region_ids, region_xy, stations["region_id"], station_ids, station_xy)
    outside = ~np.isin(region_ids, within["region_id"].to_numpy())
    idw = _idw_rows(region_ids[outside], region_xy[outside], station_ids, station_xy, cfg)
    rows = pd.concat([within, idw], ignore_index=True)
    return rows.sort_values(["region_id", "distance_km", "station_id"], ignore_index=True)


def _within_rows(
    region_ids: np.ndarray, region_xy: np.ndarray, station_regions: pd.Series, station_ids: np.ndarray,
    station_xy: np.ndarray,
) -> pd.DataFrame:
    """Rows pairing each region with the stations located inside it (equal weights)."""
    position = pd.Index(region_ids).get_indexer(station_regions)  # -1: outside every region (NULL)
    station = np.flatnonzero(position >= 0)
    region = position[station]
    distance = np.hypot(*(station_xy[station] - region_xy[region]).T)
    weight = 1.0 / np.bincount(region, minlength=len(region_ids))[region]
    return _frame(region_ids[region], station_ids[station], "within", weight, distance)


def _idw_rows(
    region_ids: np.ndarray, region_xy: np.ndarray, station_ids: np.ndarray, station_xy: np.ndarray,
    cfg: ExposureConfig,
) -> pd.DataFrame:
    """Rows pairing each region with its nearest stations within the radius, with inverse-distance weights."""
    k = cfg.idw_max_stations
    nearest = _nearest_within(region_xy, station_ids, station_xy, k, cfg.idw_radius_km)
    region, rank = nearest["region"].to_numpy(), nearest["rank"].to_numpy()
    distances = np.full((len(region_ids), k), np.inf)
    distances[region, rank] = nearest["distance"].to_numpy()
    weights = idw_weights(distances, cfg.idw_power)[region, rank]
    used = weights > 0
    return _frame(
        region_ids[region[used]], nearest["station_id"].to_numpy()[used], "idw", weights[used],
        distances[region[used], rank[used]],
    )


def _nearest_within(
    region_xy: np.ndarray, station_ids: np.ndarray, station_xy: np.ndarray, k: int, radius_km: float
) -> pd.DataFrame:
    """Up to k stations per region within radius_km (inclusive), ranked by distance, ties by station_id.

    Columns region (position in region_xy), station_id, distance, rank (0 = nearest). Stations at the same
    distance (co-located ones, say) are kept in station_id order, so the choice at the k-th slot does not
    depend on the order of the input rows.
    """
    within = cKDTree(station_xy).query_ball_point(region_xy, r=radius_km)
    region = np.repeat(np.arange(len(region_xy)), [len(found) for found in within])
    station = np.fromiter((i for found in within for i in found), dtype=np.intp, count=len(region))
    candidates = pd.DataFrame(
        {
            "region": region,
            "station_id": station_ids[station],
            "distance": np.hypot(*(station_xy[station] - region_xy[region]).T),
        }
    ).sort_values(["region", "distance", "station_id"], ignore_index=True)
    candidates["rank"] = candidates.groupby("region").cumcount()
    return candidates[candidates["rank"] < k].reset_index(drop=True)


def idw_weights(distances_km: np.ndarray, power: float) -> np.ndarray:
    """Row-wise inverse-distance weights summing to 1 (inf = no station: weight 0; zero distance takes all)."""
    found = np.isfinite(distances_km)
    at_zero = found & (distances_km <= 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(found & ~at_zero, distances_km ** (-power), 0.0)
        raw = np.where(at_zero.any(axis=1, keepdims=True), at_zero.astype(float), inverse)
        return np.nan_to_num(raw / raw.sum(axis=1, keepdims=True))


def _frame(
    region_ids: np.ndarray, station_ids: np.ndarray, method: str, weights: np.ndarray, distances: np.ndarray
) -> pd.DataFrame:
    """Assignment rows in the standard column order."""
    return pd.DataFrame(
        {
            "region_id": region_ids,
            "station_id": station_ids,
            "assignment_method": method,
            "weight": weights.astype(float),
            "distance_km": distances.astype(float),
        },
        columns=ASSIGNMENT_COLUMNS,
    )


def nearest_station_km(regions: gpd.GeoSeries, stations: gpd.GeoDataFrame) -> pd.Series:
    """Distance (km) from each region's point to its nearest station, NaN when there are no stations."""
    if stations.empty:
        return pd.Series(np.nan, index=regions.index, name="nearest_station_km")
    distances, _ = cKDTree(_xy_km(stations.geometry)).query(_xy_km(regions), k=1)
    return pd.Series(distances, index=regions.index, name="nearest_station_km")
