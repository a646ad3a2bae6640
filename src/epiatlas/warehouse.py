"""Parquet-per-table storage with an atomically published DuckDB catalog.

Each table lives under `<root>/tables/<name>/`, unpartitioned (`data.parquet`) or Hive-partitioned
(`<column>=<key>/data.parquet`, the partition column kept out of the file as Hive layouts do).
Writers produce a temporary file in the target folder and rename it into place, so concurrent
writers never share a DuckDB file and readers never see half a table. Tables that are private in their
contract are written owner-only (folders 0700, files 0600).

The published catalog is a self-contained snapshot: the rows of every stored public table copied into one
DuckDB file, plus the results of the `sql/views` templates computed inside it over those copies only. It
names no file, so it works wherever it is copied. It is built under a temporary name, verified by
reopening it as an analyst would, and swapped in with `os.replace`: readers see the old catalog or the
new one, never a mix, and a failed publish leaves the old one intact.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from epiatlas.contracts.sql import ident, literal
from epiatlas.errors import WarehouseError

DATA_FILE = "data.parquet"
PARTITION_FILE = "_partitioning.json"  # {"column": ..., "type": ...}: Hive paths carry no types
TMP_SUFFIX = ".tmp"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The analyst's connection: no file system, no other databases, no extensions, settings frozen.
ANALYST_CONFIG: dict[str, str | bool] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}
_TEMPLATE_REF = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
log = logging.getLogger(__name__)


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
    """The catalog that was swapped in: its tables with their row counts, the templates not yet computable, its info."""

    path: Path
    rows: Mapping[str, int]
    skipped: tuple[str, ...]
    info: Mapping[str, str]

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(sorted(self.rows))


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise WarehouseError(f"invalid table or column name {name!r}: use lower-case letters, digits and _")
    return name


def new_connection(memory_limit: str = "2GB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with bounded memory, for one step's work."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {literal(memory_limit)}")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    con.execute("SET preserve_insertion_order = true")
    return con


class Warehouse:
    """Tables as Parquet under one root, plus the published DuckDB catalog."""

    def __init__(self, root: Path, catalog_name: str = "catalog.duckdb", private_tables: Iterable[str] = ()) -> None:
        """`private_tables`: tables written owner-only and never copied into the catalog (from their contracts)."""
        self.root = Path(root)
        self.catalog_path = self.root / catalog_name
        self.private_tables = frozenset(private_tables)

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

    def _make_dir(self, table: str, folder: Path) -> None:
        """Create a table's (or partition's) folder; owner-only for a private table, whatever the umask."""
        folder.mkdir(parents=True, exist_ok=True)
        if table in self.private_tables:
            for path in {self.table_dir(table), folder}:
                os.chmod(path, PRIVATE_DIR_MODE)

    def _replace_file(self, table: str, tmp: Path, target: Path) -> None:
        """Rename a finished temporary file into place, owner-only first for a private table."""
        if table in self.private_tables:
            os.chmod(tmp, PRIVATE_FILE_MODE)
        os.replace(tmp, target)

    def _record_partitioning(self, table: str, column: str, dtype: str) -> None:
        """Write the partition column's type beside the data, atomically, when it is new or changed."""
        spec = self.table_dir(table) / PARTITION_FILE
        if self.partitioning(table) == (column, dtype):
            return
        tmp = spec.with_name(f".{PARTITION_FILE}.{uuid.uuid4().hex}{TMP_SUFFIX}")
        try:
            tmp.write_text(json.dumps({"column": column, "type": dtype}), encoding="utf-8")
            self._replace_file(table, tmp, spec)
        finally:
            tmp.unlink(missing_ok=True)

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
            return f"read_parquet({literal(str(self.table_dir(table) / DATA_FILE))})"
        column, dtype = part
        pattern = str(self.table_dir(table) / f"{column}=*" / DATA_FILE)
        return (
            f"read_parquet({literal(pattern)}, hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{{literal(column)}: {dtype}}})"
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
            self._make_dir(table, target_dir)
            self._record_partitioning(table, column, types.get(column, "VARCHAR"))
        self._make_dir(table, target_dir)
        target = target_dir / DATA_FILE
        tmp = target_dir / f".{DATA_FILE}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        try:
            con.execute(
                f"COPY ({select}) TO {literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
            )
            self._replace_file(table, tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        rows = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(target))})").fetchone()[0]
        schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(target))})").fetchall()
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

    def temporary_files(self) -> list[Path]:
        """Temporary files of unfinished writes: table files, partition specs, catalogs and their WALs."""
        catalogs = self.catalog_path.parent.glob(f".{self.catalog_path.name}.*{TMP_SUFFIX}*")
        tables = (self.root / "tables").rglob(f".*{TMP_SUFFIX}")
        return sorted(p for p in (*catalogs, *tables) if p.is_file())

    def clean_temporaries(self) -> list[Path]:
        """Remove what killed or failed writers left behind; only while holding the warehouse lock."""
        removed = self.temporary_files()
        for path in removed:
            path.unlink(missing_ok=True)
        if removed:
            log.warning("removed %d temporary files left by an unfinished run under %s", len(removed), self.root)
        return removed

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
        """Build the self-contained catalog under a temporary name, verify it opens, and swap it in.

        `public_tables` maps a public table to its column order (from its contract); its stored rows are
        copied into the catalog. `view_templates` maps a name to SQL in which `{{ table }}` stands for one
        of those public tables; it runs inside the catalog, with file access already off, and its result
        is stored as a table. A template naming any other table is refused. `info` becomes the one-row
        `catalog_info` table.
        """
        self._refuse_non_public_templates(public_tables, view_templates)
        self.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.catalog_path.with_name(f".{self.catalog_path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
        try:
            rows, skipped = self._build_catalog(tmp, public_tables, view_templates, info)
            self._verify_catalog(tmp, rows)
            self._remove_stale_wal()
            os.replace(tmp, self.catalog_path)
        finally:
            for leftover in (tmp, _wal_of(tmp)):
                leftover.unlink(missing_ok=True)
        return PublishedCatalog(self.catalog_path, rows, skipped, dict(info))

    def _refuse_non_public_templates(
        self, public_tables: Mapping[str, list[str]], view_templates: Mapping[str, str]
    ) -> None:
        for view, template in sorted(view_templates.items()):
            if hidden := sorted(set(_TEMPLATE_REF.findall(template)) - set(public_tables)):
                kind = "private" if set(hidden) <= self.private_tables else "not public"
                raise WarehouseError(
                    f"catalog template {view!r} (sql/views/{view}.sql) references {', '.join(hidden)}, "
                    f"which is {kind}: "
                    "templates run inside the catalog over public tables only; publish a public table for what "
                    "it needs (with its own contract) and reference that instead"
                )

    def _build_catalog(
        self,
        path: Path,
        public_tables: Mapping[str, list[str]],
        view_templates: Mapping[str, str],
        info: Mapping[str, str],
    ) -> tuple[dict[str, int], tuple[str, ...]]:
        """Copy the stored public tables into a new DuckDB file, then compute the templates over the copies."""
        rows: dict[str, int] = {}
        skipped: list[str] = []
        con = duckdb.connect(str(path), config={"memory_limit": "2GB", "preserve_insertion_order": True})
        try:
            for table, columns in sorted(public_tables.items()):
                if self.exists(table):
                    self._copy_table(con, table, columns)
                    rows[table] = con.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()[0]
            # From here on the catalog's own tables are all a template can reach.
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            for view, template in sorted(view_templates.items()):
                if not set(_TEMPLATE_REF.findall(template)) <= set(rows):
                    skipped.append(view)
                    continue
                sql = _TEMPLATE_REF.sub(lambda m: ident(m.group(1)), template).strip().rstrip(";")
                con.execute(f"CREATE OR REPLACE TABLE {ident(_check_ident(view))} AS {sql}")
                rows[view] = con.execute(f"SELECT count(*) FROM {ident(view)}").fetchone()[0]
            cols = ", ".join(f"{literal(v)} AS {ident(_check_ident(k))}" for k, v in info.items())
            con.execute(f"CREATE TABLE catalog_info AS SELECT {cols}")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        return rows, tuple(skipped)

    def _copy_table(self, con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> None:
        """Copy a stored table's rows into the catalog, in its contract's column order."""
        stored = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {self.scan_sql(table)}").fetchall()}
        select = ", ".join(ident(c) for c in columns if c in stored) or "*"
        con.execute(f"CREATE TABLE {ident(table)} AS SELECT {select} FROM {self.scan_sql(table)}")

    def _verify_catalog(self, path: Path, rows: Mapping[str, int]) -> None:
        """Reopen a built catalog as an analyst would and check it answers with the rows written."""
        try:
            with duckdb.connect(str(path), read_only=True, config=ANALYST_CONFIG) as con:
                con.execute("SELECT * FROM catalog_info").fetchall()
                found = {t: con.execute(f"SELECT count(*) FROM {ident(t)}").fetchone()[0] for t in rows}
        except duckdb.Error as exc:
            raise WarehouseError(
                f"the catalog built for {self.catalog_path} does not open ({exc}); nothing was published"
            ) from exc
        if found != dict(rows):
            raise WarehouseError(
                f"the catalog built for {self.catalog_path} lost rows ({found} != {dict(rows)}); nothing was published"
            )

    def _remove_stale_wal(self) -> None:
        """A WAL left beside the old catalog would be replayed onto the new file and make it unopenable."""
        wal = _wal_of(self.catalog_path)
        if wal.exists():
            log.warning("removing %s, left by a read-write session on the previous catalog", wal)
            wal.unlink()

    def read_catalog(self) -> duckdb.DuckDBPyConnection:
        """The analyst's connection: read-only, no file system or other databases, configuration locked."""
        if not self.catalog_path.exists():
            raise WarehouseError(f"no published catalog at {self.catalog_path}; run the pipeline first")
        return duckdb.connect(str(self.catalog_path), read_only=True, config=ANALYST_CONFIG)


def _wal_of(database: Path) -> Path:
    """DuckDB's write-ahead log beside a database file."""
    return database.with_name(database.name + ".wal")
