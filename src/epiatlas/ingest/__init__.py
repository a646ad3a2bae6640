"""Ingest: read each source file into DuckDB, validate it against its contract, stage clean rows, quarantine the rest.

    result = ingest_source(con, "hospitalizations", cfg)   # -> staged_hospitalizations, quarantine_hospitalizations
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from epiatlas.config import SourceConfig
from epiatlas.contracts import Contract, load_contract
from epiatlas.contracts.sql import ident
from epiatlas.errors import SourceError
from epiatlas.ingest.columns import check_config_names
from epiatlas.ingest.geometry import assign_station_regions, boundary_columns, read_boundaries, read_regions
from epiatlas.ingest.resources import bounded_memory
from epiatlas.ingest.result import IngestResult
from epiatlas.ingest.staging import reconcile, record_geometry_repairs, stage
from epiatlas.ingest.tabular import RawSource, file_columns, read_tabular

__all__ = ["IngestResult", "ingest_source", "source_columns"]


def _read(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig, contract: Contract) -> RawSource:
    """Boundary files go through geopandas, everything else is read by DuckDB itself."""
    if source == "regions":
        return read_regions(con, source, cfg, contract)
    return read_tabular(con, source, cfg, contract)


def source_columns(con: duckdb.DuckDBPyConnection, source: str, file: Path, cfg: SourceConfig) -> list[str]:
    """Column names of one input file (a boundary file's attributes, its CRS checked), as ingest will see them."""
    if source == "regions":
        return boundary_columns(read_boundaries(file, cfg))
    return file_columns(con, file, cfg)


def _drop(con: duckdb.DuckDBPyConnection, raw: RawSource, source: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS {ident('__raw_' + source)}")
    for table in raw.temp_tables:
        con.execute(f"DROP TABLE IF EXISTS {ident(table)}")


def ingest_source(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig,
                  contract: Contract | None = None) -> IngestResult:
    """Create staged_<source> and quarantine_<source> in `con` from the configured file(s).

    A whole-file problem raises its SourceError subclass, the message prefixed with `sources.<source>`.
    """
    try:
        return _ingest(con, source, cfg, contract or load_contract(source))
    except SourceError as exc:
        raise type(exc)(f"sources.{source}: {exc}") from exc


def _ingest(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig, contract: Contract) -> IngestResult:
    """ingest_source without the source-name prefix on errors."""
    check_config_names(source, cfg, contract)
    with bounded_memory(con):
        raw = _read(con, source, cfg, contract)
        try:
            accepted, quarantined = stage(con, source, contract, raw.layout)
            repaired = record_geometry_repairs(con, source, raw.layout, raw.repair_column) if raw.repair_column else 0
        finally:
            _drop(con, raw, source)
        if source == "pollutant_stations":
            assign_station_regions(con, f"staged_{source}")
    reconcile(source, str(cfg.path), raw.rows_read, accepted, quarantined)
    return IngestResult(source, str(cfg.path), raw.rows_read, accepted, quarantined,
                        f"staged_{source}", f"quarantine_{source}", repaired)
