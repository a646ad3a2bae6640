"""Read CSV (as text) or Parquet files into one DuckDB view, one row per data row with its file and row number."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from epiatlas.config import SourceConfig
from epiatlas.contracts import Contract
from epiatlas.contracts.sql import ident, literal
from epiatlas.contracts.validation import RawLayout
from epiatlas.errors import EmptySourceError, SourceEncodingError, SourceParseError
from epiatlas.ingest.columns import map_columns
from epiatlas.ingest.files import duckdb_encoding, require_text, source_files


@dataclass(frozen=True)
class _FileRead:
    """One file's SELECT under canonical names, its data row count and its column mapping."""

    select: str
    rows: int
    mapping: dict[str, str]


@dataclass(frozen=True)
class RawSource:
    """A raw relation in the connection, how it maps onto the contract, and how many rows the files hold.

    `repair_column`, when set, names a raw column with a note for each row whose geometry the reader repaired.
    """

    layout: RawLayout
    rows_read: int
    temp_tables: tuple[str, ...] = ()
    repair_column: str | None = None


def _csv_reader(file: Path, cfg: SourceConfig) -> str:
    """read_csv call that keeps every value as text, so nothing is lost to type sniffing."""
    options = [f"encoding={literal(duckdb_encoding(file, cfg.encoding))}", "all_varchar=true", "header=true", "skip=0",
               "quote='\"'"]
    if cfg.delimiter:
        options.append(f"delim={literal(cfg.delimiter)}")
    return f"read_csv({literal(str(file))}, {', '.join(options)})"


def run_csv(con: duckdb.DuckDBPyConnection, file: Path, cfg: SourceConfig, sql: str) -> duckdb.DuckDBPyConnection:
    """Execute SQL that reads a CSV, translating DuckDB's reader errors into source errors."""
    try:
        return con.execute(sql)
    except duckdb.InvalidInputException as exc:
        if "invalid unicode" in str(exc).lower():
            raise SourceEncodingError(
                f"{file}: the bytes are not valid {cfg.encoding} (rule: encoding). If the file was saved by "
                f"Excel or Windows, set 'encoding: latin-1' for this source; otherwise re-encode it to UTF-8. "
                f"DuckDB said: {str(exc).splitlines()[0]}"
            ) from exc
        raise _malformed(file, cfg, str(exc).splitlines()[0]) from exc


def _first_bad_line(file: Path, cfg: SourceConfig) -> tuple[int, int, str] | None:
    """(file line, data row, what is wrong) of the first row that is not well-formed CSV, or None.

    Runs only after DuckDB refused the file, to name the line: a row with another number of fields than the
    header, or a quote left open (a truncated file).
    """
    with file.open(newline="", encoding=cfg.encoding, errors="replace") as fh:
        delimiter = cfg.delimiter or max(",;\t|", key=fh.readline().count)
        fh.seek(0)
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        header = next(reader, [])
        row_number = 0
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                return line, row_number + 1, f"{exc} (a quote opened on this line is never closed)"
            if not row:
                continue
            row_number += 1
            if len(row) != len(header):
                return line, row_number, f"{len(row)} fields where the header has {len(header)}"


def _malformed(file: Path, cfg: SourceConfig, detail: str) -> SourceParseError:
    """The error for a CSV DuckDB cannot parse, naming its first malformed line when there is one."""
    bad = _first_bad_line(file, cfg)
    if bad is None:
        return SourceParseError(f"{file}: not a readable CSV file (rule: csv format): {detail}; check the "
                                f"delimiter ('delimiter') and the encoding ('encoding') for this source")
    line, row, what = bad
    return SourceParseError(
        f"{file}: line {line} (data row {row}) is malformed: {what} (rule: csv format, every row has the header's "
        f"fields and every quote is closed). The file may be truncated or hand-edited; re-export it or fix that line"
    )


def _file_select(file: Path, relation: str, row_number: str, mapping: dict[str, str], as_text: set[str]) -> str:
    """SELECT of one file's mapped columns under canonical names, with __file and __row_number."""
    columns = [f"{literal(file.name)} AS __file", f"{row_number} AS __row_number"]
    for name, col in mapping.items():
        value = f"CAST({ident(col)} AS VARCHAR)" if name in as_text else ident(col)
        columns.append(f"{value} AS {ident(name)}")
    return f"SELECT {', '.join(columns)} FROM {relation}"


def csv_columns(con: duckdb.DuckDBPyConnection, file: Path, cfg: SourceConfig) -> list[str]:
    """The header of a CSV file as DuckDB splits it; binary or unsplittable files raise."""
    require_text(file, cfg.encoding)
    describe = f"DESCRIBE SELECT * FROM {_csv_reader(file, cfg)}"
    columns = [row[0] for row in run_csv(con, file, cfg, describe).fetchall()]
    if len(columns) == 1 and any(d in columns[0] for d in ",;\t|"):
        raise _malformed(file, cfg, f"the header {columns[0]!r} could not be split into columns")
    return columns


def scan_sql(file: Path, cfg: SourceConfig) -> str:
    """A DuckDB table function reading one CSV (every value as text) or Parquet file."""
    return _csv_reader(file, cfg) if cfg.resolved_format == "csv" else f"read_parquet({literal(str(file))})"


def file_columns(con: duckdb.DuckDBPyConnection, file: Path, cfg: SourceConfig) -> list[str]:
    """Column names of one CSV or Parquet file, read from its header or schema only."""
    if cfg.resolved_format == "csv":
        return csv_columns(con, file, cfg)
    return list(_parquet_schema(con, file)[0])


def _read_csv_file(con: duckdb.DuckDBPyConnection, file: Path, table: str, cfg: SourceConfig,
                   contract: Contract) -> _FileRead:
    """Copy one CSV into a temp table, whose rowid is the data row order, and describe it."""
    reader = _csv_reader(file, cfg)
    mapping = map_columns(file, csv_columns(con, file, cfg), cfg, contract)
    run_csv(con, file, cfg, f"CREATE OR REPLACE TEMP TABLE {ident(table)} AS SELECT * FROM {reader}")
    rows = con.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()[0]
    return _FileRead(_file_select(file, ident(table), "rowid + 1", mapping, set()), rows, mapping)


def _read_csv_files(con: duckdb.DuckDBPyConnection, source: str, files: list[Path], cfg: SourceConfig,
                    contract: Contract) -> tuple[list[_FileRead], frozenset[str], tuple[str, ...]]:
    """Every CSV as text in its own temp table; no column is typed yet."""
    tables = tuple(f"__raw_{source}_{i}" for i in range(len(files)))
    reads = [_read_csv_file(con, file, table, cfg, contract) for file, table in zip(files, tables)]
    return reads, frozenset(), tables


def _parquet_schema(con: duckdb.DuckDBPyConnection, file: Path) -> tuple[dict[str, str], int]:
    """Column types and row count (from the footer) of a Parquet file."""
    path = literal(str(file))
    try:
        schema = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()}
        rows = con.execute(f"SELECT sum(num_rows) FROM parquet_file_metadata({path})").fetchone()[0] or 0
    except duckdb.Error as exc:
        raise SourceParseError(f"{file}: not a readable Parquet file (rule: parquet format): {exc}") from exc
    return schema, int(rows)


def _read_parquet_files(con: duckdb.DuckDBPyConnection, files: list[Path], cfg: SourceConfig,
                        contract: Contract) -> tuple[list[_FileRead], frozenset[str], tuple[str, ...]]:
    """SELECTs over the Parquet files; a column stored in its contract type in every file stays typed, others become text."""
    schemas = [_parquet_schema(con, file) for file in files]
    mappings = [map_columns(file, list(schema), cfg, contract) for file, (schema, _) in zip(files, schemas)]
    typed = frozenset.intersection(*(
        frozenset(name for name, col in mapping.items() if schema[col] == contract.column(name).type != "VARCHAR")
        for mapping, (schema, _) in zip(mappings, schemas)
    ))
    reads = [
        _FileRead(_file_select(file, f"read_parquet({literal(str(file))}, file_row_number=true)",
                               "file_row_number + 1", mapping, set(mapping) - typed), rows, mapping)
        for file, mapping, (_, rows) in zip(files, mappings, schemas)
    ]
    return reads, typed, ()


def read_tabular(con: duckdb.DuckDBPyConnection, source: str, cfg: SourceConfig, contract: Contract) -> RawSource:
    """Create view `__raw_<source>` over every file of the source (by column name); whole-file problems raise."""
    files = source_files(cfg.path)
    if cfg.resolved_format == "csv":
        reads, typed, temp_tables = _read_csv_files(con, source, files, cfg, contract)
    else:
        reads, typed, temp_tables = _read_parquet_files(con, files, cfg, contract)
    rows_read = sum(r.rows for r in reads)
    if rows_read == 0:
        raise EmptySourceError(
            f"{', '.join(map(str, files))}: no data rows, only a header (rule: a source needs at least one row)"
        )
    relation = f"__raw_{source}"
    # Files in (name, path) order: the staged table keeps the relation's order, which is then the order of
    # (__file, __row_number) that quarantine and duplicate messages use.
    ordered = sorted(zip(files, reads), key=lambda pair: (pair[0].name, str(pair[0])))
    union = " UNION ALL BY NAME ".join(r.select for _, r in ordered)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(relation)} AS {union}")
    mapping = {name: col for r in reads for name, col in r.mapping.items()}
    layout = RawLayout(ident(relation), mapping, typed, cfg.recode, cfg.date_format,
                       files=tuple((file.name, r.rows) for file, r in ordered))
    return RawSource(layout, rows_read, temp_tables)
