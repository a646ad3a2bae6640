"""Small pandas frames (lookups, weights, station assignments) stored as TEMP tables in the caller's connection."""

from __future__ import annotations

import duckdb
import pandas as pd


def create_temp_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> str:
    """Copy `frame` into TEMP table `name` (replacing it) so SQL can join it; return the name."""
    view = f"{name}__frame"
    con.register(view, frame)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)
    return name
