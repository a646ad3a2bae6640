"""Boundary files (regions) and station locations: CRS checks, geodesic measures, point in polygon."""

from __future__ import annotations

import json

from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Geod

from epiatlas.config import SourceConfig
from epiatlas.contracts import Contract
from epiatlas.contracts.checks import Check
from epiatlas.contracts.sql import ident
from epiatlas.contracts.validation import RawLayout
from epiatlas.errors import EmptySourceError, GeometryError, SourceParseError
from epiatlas.ingest.columns import map_columns
from epiatlas.ingest.files import source_files
from epiatlas.ingest.tabular import RawSource

_EQUAL_AREA = "EPSG:6933"
_GEOD = Geod(ellps="WGS84")
_DERIVED = ("area_km2", "centroid_lon", "centroid_lat", "geometry")
REPAIR_COLUMN = "__geometry_repair"
GEOMETRY_CHECK = Check("contract_values", "geometry", "geometry", "__geometry_problem IS NOT NULL",
                       "'geometry: ' || __geometry_problem")


def _read_frame(file: Path, cfg: SourceConfig) -> gpd.GeoDataFrame:
    """The boundary file as a GeoDataFrame (GeoParquet, or anything pyogrio reads)."""
    try:
        if cfg.resolved_format == "parquet":
            return gpd.read_parquet(file)
        return gpd.read_file(file, layer=cfg.layer, engine="pyogrio")
    except Exception as exc:  # GDAL and Arrow raise many unrelated types for an unreadable file
        raise SourceParseError(f"{file}: not a readable {cfg.resolved_format} boundary file: {exc}") from exc


def _with_crs(frame: gpd.GeoDataFrame, file: Path, cfg: SourceConfig) -> gpd.GeoDataFrame:
    """Set the configured CRS when the file has none, reject impossible CRSs, reproject to EPSG:4326."""
    if frame.crs is None:
        if cfg.crs is None:
            raise GeometryError(
                f"{file}: the file declares no CRS and the config gives none (rule: CRS required); "
                f"set 'crs' for this source, e.g. crs: EPSG:4326 or the projected CRS of the data"
            )
        frame = frame.set_crs(cfg.crs)
    crs = CRS.from_user_input(frame.crs)
    minx, miny, maxx, maxy = frame.total_bounds
    if crs.is_geographic and (max(abs(minx), abs(maxx)) > 180 or max(abs(miny), abs(maxy)) > 90):
        raise GeometryError(
            f"{file}: wrong CRS: the geometry column declares geographic {crs.to_string()} (degrees) but its "
            f"coordinates reach x {minx:.0f}..{maxx:.0f}, y {miny:.0f}..{maxy:.0f}, which are projected units "
            f"(rule: coordinates within ±180/±90). Declare the real projected CRS in the file or, if it has none, "
            f"under 'crs' in the config."
        )
    return frame.to_crs("EPSG:4326")


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal parts of a geometry as one (Multi)Polygon, or None when it has none."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return None if geom.is_empty else geom
    if geom.geom_type == "GeometryCollection":
        parts = [p for g in geom.geoms if (p := _polygonal(g)) is not None]
        return shapely.union_all(parts) if parts else None
    return None


def _repaired(geom: shapely.Geometry | None) -> tuple[shapely.Geometry | None, str | None, str | None]:
    """(usable geometry, problem, repair note): valid polygons pass, invalid ones are repaired when they can be.

    Repair is shapely's `make_valid` keeping the polygonal parts; what cannot be repaired into a non-empty
    polygon (missing, not a polygon, or nothing polygonal left) is a problem, and the row is quarantined.
    """
    if geom is None or geom.is_empty:
        return None, "missing or empty geometry", None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None, f"{geom.geom_type} is not a polygon", None
    if geom.is_valid:
        return geom, None, None
    reason = shapely.is_valid_reason(geom)
    fixed = _polygonal(shapely.make_valid(geom))
    if fixed is None or fixed.area == 0:
        return None, f"{reason}; make_valid left no polygonal area", None
    parts = len(getattr(fixed, "geoms", [fixed]))
    return fixed, None, f"geometry: {reason}; repaired with make_valid (polygonal parts kept: {parts})"


def _derived_columns(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """Geodesic area (km2), equal-area centroid (lon/lat), WKB, and the problem or repair of each feature."""
    checked = [_repaired(g) for g in frame.geometry]
    geoms = gpd.GeoSeries([g for g, _, _ in checked], index=frame.index, crs=frame.crs)
    usable = geoms.notna()
    centroids = geoms[usable].to_crs(_EQUAL_AREA).centroid.to_crs("EPSG:4326")
    area = [abs(_GEOD.geometry_area_perimeter(g)[0]) / 1e6 if ok else None for g, ok in zip(geoms, usable)]
    return pd.DataFrame({
        "area_km2": pd.array(area, dtype="Float64"),
        "centroid_lon": centroids.x.reindex(geoms.index).astype("Float64"),
        "centroid_lat": centroids.y.reindex(geoms.index).astype("Float64"),
        "geometry": [shapely.to_wkb(g) if ok else None for g, ok in zip(geoms, usable)],
        "__geometry_problem": [problem for _, problem, _ in checked],
        REPAIR_COLUMN: [note for _, _, note in checked],
    }, index=geoms.index)


def _as_text(values: pd.Series) -> list[str | None]:
    """Attribute values as raw text, as a CSV would hold them."""
    return [None if pd.isna(v) else str(v) for v in values]


def read_boundaries(file: Path, cfg: SourceConfig) -> gpd.GeoDataFrame:
    """A boundary file with at least one feature, in EPSG:4326 (CRS rules checked)."""
    frame = _read_frame(file, cfg)
    if frame.empty:
        raise EmptySourceError(f"{file}: the boundary file has no features (rule: a source needs at least one row)")
    return _with_crs(frame, file, cfg)


def boundary_fields(file: Path, cfg: SourceConfig) -> list[str]:
    """The attribute column names of a boundary file, read from its schema only (no feature is read)."""
    try:
        if cfg.resolved_format == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(file)
            geometry = json.loads(schema.metadata.get(b"geo", b"{}")).get("primary_column", "geometry")
            return [n for n in schema.names if n != geometry]
        import pyogrio

        return list(pyogrio.read_info(file, layer=cfg.layer)["fields"])
    except Exception as exc:  # GDAL and Arrow raise many unrelated types for an unreadable file
        raise SourceParseError(f"{file}: not a readable {cfg.resolved_format} boundary file: {exc}") from exc


def boundary_columns(frame: gpd.GeoDataFrame) -> list[str]:
    """The attribute (non-geometry) columns of a boundary frame."""
    return [c for c in frame.columns if c != frame.geometry.name]


def read_regions(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig, contract: Contract) -> RawSource:
    """Register `__raw_<source>`: attributes as text plus the derived geometry columns computed here."""
    files = source_files(cfg.path)
    if len(files) != 1:
        raise GeometryError(f"{cfg.path}: boundaries come from one file, but the pattern matches {len(files)}")
    file = files[0]
    frame = read_boundaries(file, cfg)
    attributes = boundary_columns(frame)
    mapping = map_columns(file, attributes, cfg, contract)
    raw = pd.DataFrame({"__file": file.name, "__row_number": np.arange(1, len(frame) + 1, dtype="int64")},
                       index=frame.index)
    for name, col in mapping.items():
        raw[name] = _as_text(frame[col])
    raw = pd.concat([raw, _derived_columns(frame)], axis=1).reset_index(drop=True)
    relation, table = f"__raw_{source}", f"__raw_{source}_0"
    con.register(f"{table}_frame", raw)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {ident(table)} AS SELECT * FROM {ident(table + '_frame')}")
    con.unregister(f"{table}_frame")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(relation)} AS SELECT * FROM {ident(table)}")
    layout = RawLayout(ident(relation), mapping, typed_columns=frozenset(_DERIVED), recode=cfg.recode,
                       reader_checks=(GEOMETRY_CHECK,), files=((file.name, len(frame)),))
    return RawSource(layout, len(frame), (table,), repair_column=REPAIR_COLUMN)


def assign_station_regions(con: duckdb.DuckDBPyConnection, staged: str) -> None:
    """Fill region_id of staged stations with the region containing them (lowest id on a shared border)."""
    stations = con.execute(f"SELECT station_id, lon, lat FROM {ident(staged)}").fetchall()
    regions = con.execute(
        "SELECT region_id, geometry FROM regions WHERE geometry IS NOT NULL ORDER BY region_id"
    ).fetchall()
    if not stations or not regions:
        return
    tree = shapely.STRtree(shapely.from_wkb([g for _, g in regions]))
    points = shapely.points([(lon, lat) for _, lon, lat in stations])
    station_idx, region_idx = tree.query(points, predicate="intersects")
    found: dict[str, str] = {}
    for s, r in sorted(zip(station_idx.tolist(), region_idx.tolist())):
        found.setdefault(stations[s][0], regions[r][0])
    con.execute("CREATE OR REPLACE TEMP TABLE __station_regions (station_id VARCHAR, region_id VARCHAR)")
    con.executemany("INSERT INTO __station_regions VALUES (?, ?)", list(found.items()))
    con.execute(f"UPDATE {ident(staged)} s SET region_id = m.region_id FROM __station_regions m "
                f"WHERE s.station_id = m.station_id")
    con.execute("DROP TABLE __station_regions")
