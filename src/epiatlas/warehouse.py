"""Parquet-per-table storage with an atomically published DuckDB catalog.

Each table lives under `<root>/tables/<name>/`, unpartitioned (`data.parquet`) or Hive-partitioned
(`<column>=<key>/data.parquet`, the partition column kept out of the file as Hive layouts do).
Writers produce a temporary file in the target folder and rename it into place, so concurrent
writers never share a DuckDB file and readers never see half a table. The published catalog is a
DuckDB file of views over the public tables plus the materialized results of the `sql/views` templates,
rebuilt under a temporary name and swapped in with `os.replace`: readers holding the old catalog open keep working, new readers see the new one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from epiatlas.errors import WarehouseError

DATA_FILE = "data.parquet"
PARTITION_FILE = "_partitioning.json"  # {"column": ..., "type": ...}: Hive paths carry no types
_TEMPLATE_REF = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class WrittenTable:
    """What one write produced: where, how many rows, which columns."""

    table: str
    path: Path
    rows: int
    schema: tuple[tuple[str, str], ...]

    @property
    def table_dir(self) -> Path:
        """The table's folder (the partition folder's parent for partitioned tables)."""
        return self.path.parent.parent if "=" in self.path.parent.name else self.path.parent


@dataclass(frozen=True)
class PublishedCatalog:
    """The catalog that was swapped in and the views it holds."""

    path: Path
    views: tuple[str, ...]
    skipped_views: tuple[str, ...]


def _sql_str(value: str) -> str:
    """Quote a string literal for DuckDB."""
    return "'" + value.replace("'", "''") + "'"


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise WarehouseError(f"invalid table or column name {name!r}: use lower-case letters, digits and _")
    return name


def new_connection(memory_limit: str = "2GB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with bounded memory, for one step's work."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {_sql_str(memory_limit)}")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    con.execute("SET preserve_insertion_order = true")
    return con


class Warehouse:
    """Tables as Parquet under one root, plus the published DuckDB catalog."""

    def __init__(self, root: Path, catalog_name: str = "catalog.duckdb") -> None:
        self.root = Path(root)
        self.catalog_path = self.root / catalog_name

    # --- layout -------------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / "tables" / _check_ident(table)

    def partitioning(self, table: str) -> tuple[str, str] | None:
        """(column, DuckDB type) of a stored table's Hive partitioning, or None when it is unpartitioned."""
        spec = self.table_dir(table) / PARTITION_FILE
        if not spec.exists():
            return None
        data = json.loads(spec.read_text(encoding="utf-8"))
        return data["column"], data["type"]

    def _record_partitioning(self, table: str, column: str, dtype: str) -> None:
        """Write the partition column's type beside the data, atomically, when it is new or changed."""
        spec = self.table_dir(table) / PARTITION_FILE
        if self.partitioning(table) == (column, dtype):
            return
        tmp = spec.with_name(f".{PARTITION_FILE}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"column": column, "type": dtype}), encoding="utf-8")
        os.replace(tmp, spec)

    def exists(self, table: str) -> bool:
        tdir = self.table_dir(table)
        return tdir.is_dir() and any(tdir.rglob(DATA_FILE))

    def scan_sql(self, table: str) -> str:
        """A `read_parquet(...)` expression over every file of a stored table."""
        if not self.exists(table):
            raise WarehouseError(
                f"table {table!r} has not been materialized under {self.table_dir(table)}; "
                "materialize its asset first (e.g. `epiatlas run --config FILE`)"
            )
        part = self.partitioning(table)
        if part is None:
            return f"read_parquet({_sql_str(str(self.table_dir(table) / DATA_FILE))})"
        column, dtype = part
        pattern = str(self.table_dir(table) / f"{column}=*" / DATA_FILE)
        return (
            f"read_parquet({_sql_str(pattern)}, hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{{_sql_str(column)}: {dtype}}})"
        )

    # --- writing ------------------------------------------------------------------------------
    def write_table(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        query: str,
        partition: tuple[str, str] | None = None,
    ) -> WrittenTable:
        """Write the result of `query` as the table (or one partition of it), atomically.

        `partition=("period", "2020")` writes `<table>/period=2020/data.parquet` and drops the
        partition column from the file when the query carries it.
        """
        target_dir = self.table_dir(table)
        select = f"SELECT * FROM ({query})"
        if partition is not None:
            column, key = _check_ident(partition[0]), partition[1]
            if "/" in key or key in {"", ".", ".."}:
                raise WarehouseError(f"invalid partition key {key!r} for table {table!r}")
            target_dir = target_dir / f"{column}={key}"
            types = dict(r[:2] for r in con.execute(f"DESCRIBE {select}").fetchall())
            if column in types:
                select = f"SELECT * EXCLUDE ({column}) FROM ({query})"
            target_dir.mkdir(parents=True, exist_ok=True)
            self._record_partitioning(table, column, types.get(column, "VARCHAR"))
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / DATA_FILE
        tmp = target_dir / f".{DATA_FILE}.{uuid.uuid4().hex}.tmp"
        try:
            con.execute(
                f"COPY ({select}) TO {_sql_str(str(tmp))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
            )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        rows = con.execute(f"SELECT count(*) FROM read_parquet({_sql_str(str(target))})").fetchone()[0]
        schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_sql_str(str(target))})").fetchall()
        return WrittenTable(table, target, int(rows), tuple((r[0], r[1]) for r in schema))

    def drop_partitions_except(self, table: str, keep: Iterable[str]) -> list[str]:
        """Remove partitions whose key is not in `keep` (periods or sources no longer configured)."""
        part = self.partitioning(table)
        if part is None:
            return []
        keep = set(keep)
        stale = [d for d in sorted(self.table_dir(table).glob(f"{part[0]}=*")) if d.name.split("=", 1)[1] not in keep]
        for folder in stale:
            shutil.rmtree(folder)
        return [d.name for d in stale]

    def write_frame(self, table: str, frame: object, partition: tuple[str, str] | None = None) -> WrittenTable:
        """Write a pandas DataFrame or Arrow table (small, already computed) like `write_table`."""
        with self.connect(()) as con:
            con.register("_frame", frame)
            return self.write_table(con, table, "SELECT * FROM _frame", partition)

    # --- reading ------------------------------------------------------------------------------
    @contextmanager
    def connect(self, tables: Iterable[str] | None = None, memory_limit: str = "2GB") -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory connection with a view per requested stored table (all stored tables by default)."""
        con = new_connection(memory_limit)
        try:
            for table in self.stored_tables() if tables is None else tables:
                con.execute(f"CREATE VIEW {_check_ident(table)} AS SELECT * FROM {self.scan_sql(table)}")
            yield con
        finally:
            con.close()

    def stored_tables(self) -> list[str]:
        tables_dir = self.root / "tables"
        if not tables_dir.is_dir():
            return []
        return sorted(p.name for p in tables_dir.iterdir() if p.is_dir() and self.exists(p.name))

    # --- publishing ---------------------------------------------------------------------------
    def publish(
        self,
        public_tables: Mapping[str, list[str]],
        view_templates: Mapping[str, str],
        info: Mapping[str, str],
    ) -> PublishedCatalog:
        """Build the catalog under a temporary name and swap it in.

        `public_tables` maps a public table to its column order (from its contract);
        `view_templates` maps a name to SQL in which `{{ table }}` stands for that stored table (private
        tables included: the template decides what of them is shown); its result is stored in the catalog
        as a table, so the catalog never reveals where private files live;
        `info` becomes the one-row `catalog_info` table.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{self.catalog_path.name}.{uuid.uuid4().hex}.tmp"
        views: list[str] = []
        skipped: list[str] = []
        con = duckdb.connect(str(tmp))
        try:
            for table, columns in sorted(public_tables.items()):
                if name := self._create_table_view(con, table, columns):
                    views.append(name)
            for view, template in sorted(view_templates.items()):
                refs = set(_TEMPLATE_REF.findall(template))
                if not all(self.exists(r) for r in refs):
                    skipped.append(view)
                    continue
                sql = _TEMPLATE_REF.sub(lambda m: self.scan_sql(m.group(1)), template).strip().rstrip(";")
                # Materialized, not a view: a view would show analysts the path of private files.
                con.execute(f"CREATE OR REPLACE TABLE {_check_ident(view)} AS {sql}")
                views.append(view)
            cols = ", ".join(f"{_sql_str(v)} AS {_check_ident(k)}" for k, v in info.items())
            con.execute(f"CREATE TABLE catalog_info AS SELECT {cols}")
            con.execute("CHECKPOINT")
        except BaseException:
            con.close()
            tmp.unlink(missing_ok=True)
            raise
        con.close()
        os.replace(tmp, self.catalog_path)
        return PublishedCatalog(self.catalog_path, tuple(sorted(set(views))), tuple(skipped))

    def _create_table_view(self, con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> str | None:
        """Create `SELECT <contract columns> FROM <parquet>` as a view; None when the table is not stored."""
        if not self.exists(table):
            return None
        stored = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {self.scan_sql(table)}").fetchall()}
        select = ", ".join(c for c in columns if c in stored) or "*"
        con.execute(f"CREATE OR REPLACE VIEW {_check_ident(table)} AS SELECT {select} FROM {self.scan_sql(table)}")
        return table

    def read_catalog(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the published catalog, as an epidemiologist would open it."""
        if not self.catalog_path.exists():
            raise WarehouseError(f"no published catalog at {self.catalog_path}; run the pipeline first")
        return duckdb.connect(str(self.catalog_path), read_only=True)
