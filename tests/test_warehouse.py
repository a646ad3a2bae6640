"""Storage layout: atomic Parquet writes, partitions, owner-only private tables, the self-contained catalog."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import duckdb
import pytest

from epiatlas.errors import WarehouseError
from epiatlas.warehouse import Warehouse, new_connection


def _write_demo_tables(wh: Warehouse) -> None:
    con = new_connection()
    con.execute("CREATE TABLE t AS SELECT range AS id, range % 3 AS grp, (2020 + range % 2)::INTEGER AS period FROM range(10)")
    wh.write_table(con, "numbers", "SELECT id, grp FROM t")
    for key in ("2020", "2021"):
        wh.write_table(con, "by_period", f"SELECT id, grp, period FROM t WHERE period = {key}", partition=("period", key))
    wh.write_table(con, "secret", "SELECT id AS record_id FROM t")
    con.close()


def test_write_table_reports_rows_and_schema(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    con = new_connection()
    written = wh.write_table(con, "numbers", "SELECT range AS id FROM range(7)")
    assert written.rows == 7
    assert written.schema == (("id", "BIGINT"),)
    assert written.path == tmp_path / "tables" / "numbers" / "data.parquet"
    assert not list(written.path.parent.glob("*.tmp")), "temporary files must be renamed away"


def test_partitions_are_written_independently_and_read_back_with_their_key(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    assert wh.partitioning("by_period") == ("period", "INTEGER")
    assert wh.partitioning("numbers") is None
    with wh.connect(["by_period"]) as con:
        per_period = dict(con.execute("SELECT period, count(*) FROM by_period GROUP BY 1 ORDER BY 1").fetchall())
        period_type = con.execute("SELECT typeof(period) FROM by_period LIMIT 1").fetchone()[0]
    assert per_period == {2020: 5, 2021: 5}
    assert period_type == "INTEGER", "the partition column keeps its type, not Hive's guess"
    # Rewriting one partition leaves the other untouched.
    con = new_connection()
    wh.write_table(con, "by_period", "SELECT 99 AS id, 0 AS grp, 2021 AS period", partition=("period", "2021"))
    with wh.connect(["by_period"]) as con:
        per_period = dict(con.execute("SELECT period, count(*) FROM by_period GROUP BY 1 ORDER BY 1").fetchall())
    assert per_period == {2020: 5, 2021: 1}


def test_missing_table_error_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="'census' has not been materialized"):
        Warehouse(tmp_path).scan_sql("census")


def test_publish_copies_public_tables_and_computes_templates_inside_the_catalog(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh", private_tables={"secret"})
    _write_demo_tables(wh)
    published = wh.publish(
        public_tables={"numbers": ["grp", "id"], "by_period": ["period", "id", "grp"], "absent": ["x"]},
        view_templates={
            "numbers_by_group": "SELECT grp, count(*) AS n FROM {{ numbers }} GROUP BY grp ORDER BY grp",
            "needs_absent": "SELECT * FROM {{ absent }}",
        },
        info={"name": "test", "synthetic": "true"},
    )
    assert published.tables == ("by_period", "numbers", "numbers_by_group")
    assert published.rows == {"by_period": 10, "numbers": 10, "numbers_by_group": 3}
    assert published.skipped == ("needs_absent",)
    # The snapshot holds the rows itself: it works after the warehouse is gone and the file moved elsewhere.
    moved = tmp_path / "elsewhere" / "copy.duckdb"
    moved.parent.mkdir()
    shutil.copy(wh.catalog_path, moved)
    shutil.rmtree(tmp_path / "wh")
    assert str(tmp_path).encode() not in moved.read_bytes(), "no absolute path anywhere in the catalog file"
    with Warehouse(moved.parent, moved.name).read_catalog() as cat:
        kinds = dict(cat.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        assert kinds == dict.fromkeys(["by_period", "catalog_info", "numbers", "numbers_by_group"], "BASE TABLE")
        assert "secret" not in kinds
        assert cat.execute("SELECT sum(n) FROM numbers_by_group").fetchone()[0] == 10
        assert cat.execute("SELECT count(*), sum(id) FROM by_period").fetchone() == (10, 45)
        assert [r[0] for r in cat.execute("DESCRIBE numbers").fetchall()] == ["grp", "id"]
        assert cat.execute("SELECT name FROM catalog_info").fetchone()[0] == "test"


@pytest.mark.parametrize(
    "template",
    ["SELECT count(*) AS n FROM {{ secret }}", "SELECT * FROM {{ numbers }} JOIN {{ unknown_table }} USING (id)"],
)
def test_template_reaching_a_table_that_is_not_public_is_refused(tmp_path: Path, template: str) -> None:
    wh = Warehouse(tmp_path, private_tables={"secret"})
    _write_demo_tables(wh)
    refused = r"catalog template 'leak' \(sql/views/leak.sql\) references (secret|unknown_table)"
    with pytest.raises(WarehouseError, match=refused):
        wh.publish({"numbers": ["id"]}, {"leak": template}, {"v": "1"})
    assert not wh.catalog_path.exists() and wh.temporary_files() == []


def test_template_cannot_read_files_directly(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path, private_tables={"secret"})
    _write_demo_tables(wh)
    wh.publish({"numbers": ["id"]}, {}, {"v": "1"})
    sneaky = f"SELECT * FROM read_parquet('{wh.table_dir('secret') / 'data.parquet'}')"
    with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
        wh.publish({"numbers": ["id"]}, {"sneaky": sneaky}, {"v": "2"})
    with wh.read_catalog() as cat:
        assert cat.execute("SELECT v FROM catalog_info").fetchone()[0] == "1", "the failed publish left the old catalog"
    assert wh.temporary_files() == [], "the temporary catalog was removed on the error path"


def test_reader_holding_old_catalog_does_not_block_republish(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    wh.publish({"numbers": ["id", "grp"]}, {}, {"version": "1"})
    reader = wh.read_catalog()
    try:
        con = new_connection()
        wh.write_table(con, "numbers", "SELECT range AS id, 0 AS grp FROM range(3)")
        wh.publish({"numbers": ["id", "grp"]}, {}, {"version": "2"})
        assert reader.execute("SELECT version FROM catalog_info").fetchone()[0] == "1"
        assert reader.execute("SELECT count(*) FROM numbers").fetchone()[0] == 10, "the old snapshot, not a mix"
    finally:
        reader.close()
    with wh.read_catalog() as fresh:
        assert fresh.execute("SELECT version, (SELECT count(*) FROM numbers) FROM catalog_info").fetchone() == ("2", 3)


def test_stale_wal_beside_the_catalog_is_removed_and_the_new_catalog_opens(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    wh.publish({"numbers": ["id", "grp"]}, {}, {"version": "1"})
    # An analyst opened the catalog read-write and left a write-ahead log behind.
    analyst = duckdb.connect(str(wh.catalog_path))
    analyst.execute("SET wal_autocheckpoint = '1TB'")
    analyst.execute("CREATE TABLE scratch AS SELECT range AS x FROM range(1000)")
    wal = wh.catalog_path.with_name(wh.catalog_path.name + ".wal")
    shutil.copy(wal, tmp_path / "saved.wal")
    analyst.close()
    shutil.copy(tmp_path / "saved.wal", wal)
    wh.publish({"numbers": ["id", "grp"]}, {}, {"version": "2"})
    with wh.read_catalog() as cat:
        assert cat.execute("SELECT version FROM catalog_info").fetchone()[0] == "2"
    assert not wal.exists()


def test_private_tables_and_their_folders_are_owner_only(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path, private_tables={"secret", "by_period"})
    _write_demo_tables(wh)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    for table in ("secret", "by_period"):
        tdir = wh.table_dir(table)
        assert {mode(d) for d in [tdir, *(p for p in tdir.rglob("*") if p.is_dir())]} == {0o700}, table
        assert {mode(f) for f in tdir.rglob("*") if f.is_file()} == {0o600}, table
    public = wh.table_dir("numbers")
    assert mode(public / "data.parquet") & 0o004, "public tables keep the default (readable) mode"


def test_temporary_files_of_unfinished_writes_are_found_and_cleaned(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    left = [
        wh.table_dir("numbers") / ".data.parquet.abc.tmp",
        wh.table_dir("by_period") / "period=2020" / ".data.parquet.def.tmp",
        tmp_path / ".catalog.duckdb.123.tmp",
        tmp_path / ".catalog.duckdb.123.tmp.wal",
    ]
    for path in left:
        path.write_bytes(b"partial")
    assert wh.clean_temporaries() == sorted(left)
    assert not any(p.exists() for p in left)
    assert wh.exists("numbers") and wh.exists("by_period"), "finished tables are untouched"


def test_partitions_outside_the_configured_keys_are_dropped(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    assert wh.drop_partitions_except("by_period", ["2021"]) == ["period=2020"]
    with wh.connect(["by_period"]) as con:
        assert con.execute("SELECT DISTINCT period FROM by_period").fetchall() == [(2021,)]
    assert wh.drop_partitions_except("numbers", []) == [], "unpartitioned tables are left alone"
