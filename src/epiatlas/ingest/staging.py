"""Run the contract's validation SQL over a raw relation and split it into staged and quarantine tables."""

from __future__ import annotations

import duckdb

from epiatlas.contracts import Contract
from epiatlas.contracts.checks import referenced_tables
from epiatlas.contracts.sql import ident, idents, literal
from epiatlas.contracts.validation import ROW_COLUMNS, RawLayout, checked_sql, duplicates_sql, raw_json_sql
from epiatlas.errors import ReconciliationError, WarehouseError

QUARANTINE_COLUMNS = ("source VARCHAR, file VARCHAR, row_number BIGINT, columns VARCHAR, rules VARCHAR, "
                      "message VARCHAR, raw_values VARCHAR")


def _require_references(con: duckdb.DuckDBPyConnection, source: str, contract: Contract) -> None:
    """Foreign keys are checked against tables the caller registered; say which one is missing."""
    present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for table in referenced_tables(contract):
        if table not in present:
            raise WarehouseError(
                f"ingest of {source} checks foreign keys against table {table!r}, but the connection has no "
                f"table or view of that name; register the staged {table} first"
            )


def _find_duplicates(con: duckdb.DuckDBPyConnection, contract: Contract, layout: RawLayout, checked: str) -> str:
    """Temp table of repeated-key rows (with message) and, for rows clean otherwise, their raw values."""
    duplicates = ident("__duplicates")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {duplicates} AS {duplicates_sql(contract, checked)}")
    con.execute(f"ALTER TABLE {duplicates} ADD COLUMN __raw_values VARCHAR")
    if con.execute(f"SELECT count(*) FROM {duplicates}").fetchone()[0]:
        con.execute(f"""
UPDATE {duplicates} d SET __raw_values = r.__raw_values
FROM (SELECT {', '.join(ROW_COLUMNS)}, {raw_json_sql(layout, renamed=False)} AS __raw_values
      FROM {layout.relation} SEMI JOIN {duplicates} USING ({', '.join(ROW_COLUMNS)})) r
WHERE d.__file = r.__file AND d.__row_number = r.__row_number""")
    return duplicates


def _no_duplicates() -> str:
    """An empty relation shaped like _find_duplicates' table, for contracts without a key."""
    return ("(SELECT NULL::VARCHAR AS __file, NULL::BIGINT AS __row_number, NULL::VARCHAR AS __column, "
            "NULL::VARCHAR AS __message, NULL::VARCHAR AS __raw_values WHERE false)")


def stage(con: duckdb.DuckDBPyConnection, source: str, contract: Contract, layout: RawLayout) -> tuple[int, int]:
    """Create staged_<source> (clean rows in file order, unique by now) and quarantine_<source>; return the counts."""
    _require_references(con, source, contract)
    staged, quarantine, checked = ident(f"staged_{source}"), ident(f"quarantine_{source}"), ident(f"__checked_{source}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS {checked_sql(contract, layout)}")
    duplicates = _find_duplicates(con, contract, layout, checked) if contract.primary_key else _no_duplicates()
    rows = ", ".join(ROW_COLUMNS)
    con.execute(f"CREATE OR REPLACE TABLE {staged} AS SELECT {idents(contract.column_names)} FROM {checked} "
                f"ANTI JOIN {duplicates} USING ({rows}) WHERE __rules IS NULL ORDER BY {rows}")
    con.execute(f"CREATE OR REPLACE TABLE {quarantine} ({QUARANTINE_COLUMNS})")
    con.execute(f"""
INSERT INTO {quarantine}
SELECT {literal(source)}, __file, __row_number,
       concat_ws(',', c.__columns, d.__column),
       concat_ws(',', c.__rules, CASE WHEN d.__column IS NOT NULL THEN 'primary_key' END),
       concat_ws('; ', c.__message, d.__message), coalesce(c.__raw_values, d.__raw_values)
FROM {checked} c LEFT JOIN {duplicates} d USING ({rows})
WHERE c.__rules IS NOT NULL OR d.__column IS NOT NULL
ORDER BY __file, __row_number""")
    con.execute(f"DROP TABLE {checked}")
    con.execute("DROP TABLE IF EXISTS __duplicates")
    accepted = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]
    quarantined = con.execute(f"SELECT count(*) FROM {quarantine}").fetchone()[0]
    return accepted, quarantined


def reconcile(source: str, file: str, rows_read: int, accepted: int, quarantined: int) -> None:
    """Rows read must equal rows accepted plus rows quarantined; anything else is a bug, so fail loudly."""
    if rows_read != accepted + quarantined:
        raise ReconciliationError(
            f"{file}: read {rows_read} rows of {source} but accepted {accepted} and quarantined {quarantined} "
            f"(rule: rows read = accepted + quarantined)"
        )
