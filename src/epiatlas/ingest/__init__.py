"""Ingest: read each source file into DuckDB, validate it against its contract, stage clean rows, quarantine the rest.

    result = ingest_source(con, "hospitalizations", cfg)   # -> staged_hospitalizations, quarantine_hospitalizations
"""

from __future__ import annotations

import duckdb

from epiatlas.config import SourceConfig
from epiatlas.contracts import Contract, load_contract
from epiatlas.contracts.sql import ident
from epiatlas.ingest.columns import check_config_names
from epiatlas.ingest.geometry import assign_station_regions, read_regions
from epiatlas.ingest.resources import bounded_memory
from epiatlas.ingest.result import IngestResult
from epiatlas.ingest.staging import reconcile, record_geometry_repairs, stage
from epiatlas.ingest.tabular import RawSource, read_tabular

__all__ = ["IngestResult", "ingest_source"]


def _read(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig, contract: Contract) -> RawSource:
    """Boundary files go through geopandas, everything else is read by DuckDB itself."""
    if source == "regions":
        return read_regions(con, source, cfg, contract)
    return read_tabular(con, source, cfg, contract)


def _drop(con: duckdb.DuckDBPyConnection, raw: RawSource, source: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS {ident('__raw_' + source)}")
    for table in raw.temp_tables:
        con.execute(f"DROP TABLE IF EXISTS {ident(table)}")


def ingest_source(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig,
                  contract: Contract | None = None) -> IngestResult:
    """Create staged_<source> and quarantine_<source> in `con` from the configured file(s)."""
    contract = contract or load_contract(source)
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
