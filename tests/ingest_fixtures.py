"""Small input files and connections for the contract and ingest tests."""

from __future__ import annotations

from pathlib import Path

import duckdb
import geopandas as gpd
import shapely
from shapely.geometry import Polygon

from epiatlas.config import SourceConfig
from epiatlas.ingest import IngestResult, ingest_source

HOSP_HEADER = "record_id,admission_date,discharge_date,region_id,age,sex,icd10,discharge_status,icu"
GOOD_STAY = "2020-01-01,2020-01-05,R1,40,M,E11.9,alive,false"


def square(x: float, y: float, size: float = 1.0) -> Polygon:
    """An axis-aligned square with its lower-left corner at (x, y)."""
    return Polygon([(x, y), (x + size, y), (x + size, y + size), (x, y + size)])


def write_csv(path: Path, header: str, *rows: str, encoding: str = "utf-8") -> Path:
    """A CSV file from a header line and data lines."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding=encoding)
    return path


def stays(path: Path, *rows: str) -> Path:
    """A hospitalizations CSV in canonical column names; each row is `record_id,<rest>`."""
    return write_csv(path, HOSP_HEADER, *rows)


def regions_frame(crs: str | None = "EPSG:4326") -> gpd.GeoDataFrame:
    """Two adjacent unit squares R1 (0..1) and R2 (1..2), with file-style column names."""
    return gpd.GeoDataFrame({"CVE": ["R1", "R2"], "NOM": ["Uno", "Dos"]},
                            geometry=[square(0, 0), square(1, 0)], crs=crs)


def connection_with_regions(*region_ids: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with a `regions` table (unit squares side by side) and `pollutant_stations`."""
    con = duckdb.connect()
    ids = region_ids or ("R1", "R2")
    con.execute("CREATE TABLE regions (region_id VARCHAR, geometry BLOB)")
    con.executemany("INSERT INTO regions VALUES (?, ?)",
                    [(rid, shapely.to_wkb(square(i, 0))) for i, rid in enumerate(ids)])
    con.execute("CREATE TABLE pollutant_stations AS SELECT * FROM (VALUES ('S1'), ('S2')) t(station_id)")
    return con


def ingest(con: duckdb.DuckDBPyConnection, source: str, path: Path, **cfg: object) -> IngestResult:
    """ingest_source with a SourceConfig built from keyword arguments."""
    return ingest_source(con, source, SourceConfig(path=path, **cfg))


def quarantine_rows(con: duckdb.DuckDBPyConnection, result: IngestResult) -> list[dict[str, object]]:
    """The quarantine table of an ingest as dicts, in row order."""
    cur = con.execute(f"SELECT * FROM {result.quarantine_table} ORDER BY file, row_number")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
