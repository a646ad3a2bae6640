"""Storage layout: atomic Parquet writes, partitions, catalog publishing while readers hold it open."""

from __future__ import annotations

from pathlib import Path

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


def test_publish_exposes_public_tables_and_templated_views_only(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    published = wh.publish(
        public_tables={"numbers": ["grp", "id"], "by_period": ["period", "id", "grp"], "absent": ["x"]},
        view_templates={
            "secret_counts": "SELECT count(*) AS n FROM {{ secret }}",
            "needs_absent": "SELECT * FROM {{ absent }}",
        },
        info={"name": "test", "synthetic": "true"},
    )
    assert published.views == ("by_period", "numbers", "secret_counts")
    assert published.skipped_views == ("needs_absent",)
    with wh.read_catalog() as cat:
        names = {r[0] for r in cat.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "secret" not in names
        definitions = " ".join(r[0] for r in cat.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall())
        assert "numbers" in definitions and "secret" not in definitions, "private file paths stay out of the catalog"
        assert cat.execute("SELECT n FROM secret_counts").fetchone()[0] == 10
        assert [r[0] for r in cat.execute("DESCRIBE numbers").fetchall()] == ["grp", "id"]
        assert cat.execute("SELECT name FROM catalog_info").fetchone()[0] == "test"


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
        assert reader.execute("SELECT count(*) FROM numbers").fetchone()[0] == 3  # views read the files
    finally:
        reader.close()
    with wh.read_catalog() as fresh:
        assert fresh.execute("SELECT version FROM catalog_info").fetchone()[0] == "2"


def test_partitions_outside_the_configured_keys_are_dropped(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    _write_demo_tables(wh)
    assert wh.drop_partitions_except("by_period", ["2021"]) == ["period=2020"]
    with wh.connect(["by_period"]) as con:
        assert con.execute("SELECT DISTINCT period FROM by_period").fetchall() == [(2021,)]
    assert wh.drop_partitions_except("numbers", []) == [], "unpartitioned tables are left alone"
