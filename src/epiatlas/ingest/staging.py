"""Run the contract's validation SQL over a raw relation and split it into staged and quarantine tables.

One scan of the raw relation (`staging_sql`) writes every row, typed, into staged_<source> in file order, with
a JSON `__reject` for rows that fail a row-local check. Foreign keys and duplicate keys are then checked on that
typed table; the few rows they catch are re-read from the raw relation and checked in full, so their quarantine
entries are exactly what one check of everything gives. Finally the rejected rows are deleted from the staged
table and the `__reject` column is dropped. No step sorts or copies the ten million clean rows.

Rows are found by their position (rowid) in the staged table, which is their position in the raw relation:
the relation holds the files in RawLayout.files order, each numbered 1..rows, and the staging scan keeps that
order (checked: a plan that cannot keep it is sorted instead, and positions must agree with the row numbers
the scan recorded for rejected rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa

from epiatlas.contracts import Contract
from epiatlas.contracts.checks import foreign_key_checks, referenced_tables
from epiatlas.contracts.sql import ident, idents, literal
from epiatlas.contracts.validation import (
    REJECT_FIELDS,
    ROW_COLUMNS,
    RawLayout,
    checked_sql,
    duplicates_sql,
    key_filter_sql,
    raw_json_sql,
    reject_fields_sql,
    staging_sql,
)
from epiatlas.errors import ReconciliationError, WarehouseError

QUARANTINE_COLUMNS = ("source VARCHAR, file VARCHAR, row_number BIGINT, columns VARCHAR, rules VARCHAR, "
                      "message VARCHAR, raw_values VARCHAR, action VARCHAR")
REJECTED, REPAIRED = "rejected", "repaired"
_TEMP_TABLES = ("__rejects", "__late", "__dup_hashes", "__dup_keys", "__duplicates", "__rescue", "__rescued")


def _require_references(con: duckdb.DuckDBPyConnection, source: str, contract: Contract) -> None:
    """Foreign keys are checked against tables the caller registered; say which one is missing."""
    present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for table in referenced_tables(contract):
        if table not in present:
            raise WarehouseError(
                f"ingest of {source} checks foreign keys against table {table!r}, but the connection has no "
                f"table or view of that name; register the staged {table} first"
            )


@contextmanager
def _insertion_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """preserve_insertion_order on while staging (the staged table keeps file order), restored afterwards."""
    before = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    if not before:
        con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        if not before:
            con.execute("SET preserve_insertion_order = false")


def _position_refs(layout: RawLayout, position: str) -> tuple[str, str]:
    """SQL for the file name and 1-based row number of the row at 0-based `position` of the raw relation."""
    if not layout.files:
        raise WarehouseError("internal: the raw relation does not say which files it holds (RawLayout.files)")
    if len(layout.files) == 1:
        return literal(layout.files[0][0]), f"({position} + 1)"
    files, offsets, start = [], [], 0
    for name, rows in layout.files:
        files.append(name)
        offsets.append(start)
        start += rows
    whens = list(zip(offsets[1:], range(len(files) - 1)))
    file_sql = ("CASE " + " ".join(f"WHEN {position} < {end} THEN {literal(files[i])}" for end, i in whens)
                + f" ELSE {literal(files[-1])} END")
    offset_sql = ("CASE " + " ".join(f"WHEN {position} < {end} THEN {offsets[i]}" for end, i in whens)
                  + f" ELSE {offsets[-1]} END")
    return file_sql, f"({position} - {offset_sql} + 1)"


def _write_staged(con: duckdb.DuckDBPyConnection, staged: str, contract: Contract, layout: RawLayout) -> None:
    """staged_<source> with every row, typed, in file order, plus `__reject` (the staging_sql scan)."""
    select = staging_sql(contract, layout)
    plan = con.execute(f"EXPLAIN (FORMAT JSON) CREATE TABLE {staged} AS {select}").fetchone()[1]
    if '"BATCH_CREATE_TABLE_AS"' not in plan:
        # Something in the scan (a row rule with a subquery, say) stops DuckDB from keeping the order: sort.
        rows = ", ".join(ROW_COLUMNS)
        select = (f"SELECT * EXCLUDE ({rows}) FROM ({staging_sql(contract, layout, row_columns=True)}) "
                  f"ORDER BY {rows}")
    con.execute(f"CREATE OR REPLACE TABLE {staged} AS {select}")


def _collect_rejects(con: duckdb.DuckDBPyConnection, staged: str, layout: RawLayout, rows: int) -> None:
    """__rejects: position and quarantine fields of the rows that failed a row-local check."""
    count = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]
    if count != rows:
        raise ReconciliationError(f"internal: staged {count} rows but the files hold {rows}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __rejects AS SELECT rowid AS __pos, {reject_fields_sql()} "
                f"FROM {staged} WHERE __reject IS NOT NULL")
    file_at, row_at = _position_refs(layout, "__pos")
    misplaced = con.execute(
        f"SELECT count(*) FROM __rejects WHERE __file <> {file_at} OR __row_number <> {row_at}"
    ).fetchone()[0]
    if misplaced:
        raise ReconciliationError(f"internal: {misplaced} staged rows are not at their file position")


def _foreign_key_failures(con: duckdb.DuckDBPyConnection, staged: str, contract: Contract) -> bool:
    """__late: positions of rows whose foreign key is not in the referenced table; True when there are any."""
    checks = foreign_key_checks(contract)
    failed = " OR ".join(f"coalesce({c.failed}, false)" for c in checks) or "false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE __late AS SELECT rowid AS __pos FROM {staged} WHERE {failed}")
    return bool(checks) and con.execute("SELECT count(*) FROM __late").fetchone()[0] > 0


def _repeated_hashes(con: duckdb.DuckDBPyConnection, staged: str, contract: Contract) -> np.ndarray:
    """Hashes of the key that occur more than once (a superset of the repeated keys; usually empty)."""
    keys = idents(contract.primary_key)
    hashes = con.sql(f"SELECT hash({keys}) AS h FROM {staged} WHERE {key_filter_sql(contract)}").fetchnumpy()["h"]
    hashes = np.asarray(hashes, dtype=np.uint64)
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def _find_duplicates(con: duckdb.DuckDBPyConnection, staged: str, contract: Contract, layout: RawLayout) -> bool:
    """__duplicates: (position, file, row, column, message) of every repeat of a key; True when there are any.

    Hashing the key of every row and sorting the hashes finds candidates far faster than grouping the keys;
    only rows with a repeated hash are then grouped and windowed by their real key values.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE __duplicates "
                "(__file VARCHAR, __row_number BIGINT, __column VARCHAR, __message VARCHAR, __pos BIGINT)")
    if not contract.primary_key:
        return False
    repeated = _repeated_hashes(con, staged, contract)
    if not len(repeated):
        return False
    con.register("__dup_hashes_frame", pa.table({"h": pa.array(repeated, pa.uint64())}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE __dup_hashes AS SELECT h FROM __dup_hashes_frame")
    finally:
        con.unregister("__dup_hashes_frame")
    keys = idents(contract.primary_key)
    file_at, row_at = _position_refs(layout, "__pos")
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE __dup_keys AS
SELECT {file_at} AS __file, {row_at} AS __row_number, __pos, {keys}
FROM (SELECT rowid AS __pos, {keys} FROM {staged}
      WHERE {key_filter_sql(contract)} AND hash({keys}) IN (SELECT h FROM __dup_hashes))""")
    con.execute(f"INSERT INTO __duplicates {duplicates_sql(contract, '__dup_keys', carry=('__pos',))}")
    return con.execute("SELECT count(*) FROM __duplicates").fetchone()[0] > 0


def _recheck(con: duckdb.DuckDBPyConnection, contract: Contract, layout: RawLayout) -> None:
    """__rescued: every check (foreign keys included) and the raw values of the rows in __rescue."""
    rows = idents(ROW_COLUMNS)
    relation = f"(SELECT * FROM {layout.relation} SEMI JOIN __rescue USING ({rows}))"
    sql = checked_sql(contract, dataclasses.replace(layout, relation=relation), every_raw_value=True)
    con.execute(f"CREATE OR REPLACE TEMP TABLE __rescued AS {sql}")


def _write_quarantine(con: duckdb.DuckDBPyConnection, source: str, quarantine: str, rescued: bool) -> None:
    """quarantine_<source>: row-local failures, re-checked rows and duplicate keys, in file order."""
    fields = ", ".join(REJECT_FIELDS)
    checked = f"SELECT {fields} FROM __rejects"
    if rescued:
        checked = (f"SELECT {fields} FROM __rejects WHERE __pos NOT IN (SELECT __pos FROM __rescue) "
                   f"UNION ALL SELECT {fields} FROM __rescued")
    rows = ", ".join(ROW_COLUMNS)
    con.execute(f"CREATE OR REPLACE TABLE {quarantine} ({QUARANTINE_COLUMNS})")
    con.execute(f"""
INSERT INTO {quarantine}
SELECT {literal(source)}, __file, __row_number,
       concat_ws(',', c.__columns, d.__column),
       concat_ws(',', c.__rules, CASE WHEN d.__column IS NOT NULL THEN 'primary_key' END),
       concat_ws('; ', c.__message, d.__message), c.__raw_values, {literal(REJECTED)}
FROM ({checked}) c LEFT JOIN __duplicates d USING ({rows})
WHERE c.__rules IS NOT NULL OR d.__column IS NOT NULL
ORDER BY __file, __row_number""")


def stage(con: duckdb.DuckDBPyConnection, source: str, contract: Contract, layout: RawLayout) -> tuple[int, int]:
    """Create staged_<source> (clean rows in file order, unique by now) and quarantine_<source>; return the counts."""
    _require_references(con, source, contract)
    staged, quarantine = ident(f"staged_{source}"), ident(f"quarantine_{source}")
    rows_read = sum(rows for _, rows in layout.files)
    created = False
    try:
        with _insertion_order(con):
            _write_staged(con, staged, contract, layout)
        created = True
        _collect_rejects(con, staged, layout, rows_read)
        late = _foreign_key_failures(con, staged, contract)
        repeated = _find_duplicates(con, staged, contract, layout)
        if late or repeated:
            file_at, row_at = _position_refs(layout, "__pos")
            con.execute(f"""
CREATE OR REPLACE TEMP TABLE __rescue AS
SELECT __pos, {file_at} AS __file, {row_at} AS __row_number
FROM (SELECT __pos FROM __late UNION SELECT __pos FROM __duplicates)""")
            _recheck(con, contract, layout)
        _write_quarantine(con, source, quarantine, late or repeated)
        con.execute(f"DELETE FROM {staged} WHERE rowid IN "
                    "(SELECT __pos FROM __rejects UNION ALL SELECT __pos FROM __late "
                    "UNION ALL SELECT __pos FROM __duplicates)")
        con.execute(f"ALTER TABLE {staged} DROP COLUMN __reject")
    except BaseException:
        if created:  # never leave a half-checked table under the staged name
            con.execute(f"DROP TABLE IF EXISTS {staged}")
        raise
    finally:
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {ident(table)}")
    accepted = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]
    quarantined = con.execute(f"SELECT count(*) FROM {quarantine}").fetchone()[0]
    return accepted, quarantined


def record_geometry_repairs(con: duckdb.DuckDBPyConnection, source: str, layout: RawLayout, note_column: str) -> int:
    """Add a `repaired` quarantine row (rule geometry_repaired) per row whose geometry the reader repaired.

    A repaired row that was rejected anyway keeps only its rejection. The row stays in the staged table, so
    rows read = rows accepted + rows rejected still holds; returns the number of repairs recorded.
    """
    quarantine, note = ident(f"quarantine_{source}"), ident(note_column)
    before = con.execute(f"SELECT count(*) FROM {quarantine}").fetchone()[0]
    con.execute(f"""
INSERT INTO {quarantine}
SELECT {literal(source)}, __file, __row_number, 'geometry', 'geometry_repaired', {note},
       {raw_json_sql(layout, renamed=False)}, {literal(REPAIRED)}
FROM {layout.relation} r
WHERE {note} IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {quarantine} q WHERE q.file = r.__file AND q.row_number = r.__row_number)""")
    added = con.execute(f"SELECT count(*) FROM {quarantine}").fetchone()[0] - before
    if added:
        con.execute(f"CREATE OR REPLACE TABLE {quarantine} AS SELECT * FROM {quarantine} ORDER BY file, row_number")
    return added


def reconcile(source: str, file: str, rows_read: int, accepted: int, quarantined: int) -> None:
    """Rows read must equal rows accepted plus rows quarantined; anything else is a bug, so fail loudly."""
    if rows_read != accepted + quarantined:
        raise ReconciliationError(
            f"{file}: read {rows_read} rows of {source} but accepted {accepted} and quarantined {quarantined} "
            f"(rule: rows read = accepted + quarantined)"
        )
