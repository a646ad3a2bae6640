"""Keep DuckDB's memory use bounded during an ingest, without changing the caller's settings for good."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

MEMORY_LIMIT_BYTES = 1536 * 1024**2


@contextmanager
def bounded_memory(con: duckdb.DuckDBPyConnection, limit_bytes: int = MEMORY_LIMIT_BYTES) -> Iterator[None]:
    """Lower memory_limit to `limit_bytes` (DuckDB spills to disk beyond it) and restore it afterwards."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    lowered = _parse_bytes(before) > limit_bytes
    if lowered:
        con.execute(f"SET memory_limit = '{limit_bytes}B'")
    try:
        yield
    finally:
        if lowered:
            con.execute(f"SET memory_limit = '{before}'")


def _parse_bytes(setting: str) -> float:
    """Bytes in a DuckDB size setting such as '18.8 GiB' or '1.5 GB'."""
    number, _, unit = setting.partition(" ")
    factors = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "bytes": 1}
    return float(number) * factors.get(unit or "B", 1)
