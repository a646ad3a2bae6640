"""The analyst interface as an attacker would use it: nothing outside the catalog is read, nothing is written."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from epiatlas.cli.main import app
from epiatlas.config import dump_config, load_config
from epiatlas.publish import warehouse_for
from epiatlas.warehouse import Warehouse, new_connection

SECRET = "patient-0042"


@dataclass(frozen=True)
class Published:
    """A warehouse with a private record-level table and a public one, and its published catalog."""

    warehouse: Warehouse
    secret_file: Path
    public_file: Path
    outside_csv: Path
    outside_db: Path


@pytest.fixture()
def published(tmp_path: Path) -> Published:
    wh = Warehouse(tmp_path / "wh", private_tables={"secret"})
    con = new_connection()
    wh.write_table(con, "secret", f"SELECT '{SECRET}' AS record_id, 'E119' AS icd10")
    public = wh.write_table(con, "counts", "SELECT 'A' AS region_id, 7 AS cases")
    con.close()
    wh.publish({"counts": ["region_id", "cases"]}, {}, {"name": "test"})
    outside_csv = tmp_path / "elsewhere.csv"
    outside_csv.write_text(f"record_id\n{SECRET}\n")
    outside_db = tmp_path / "other.duckdb"
    with duckdb.connect(str(outside_db)) as other:
        other.execute(f"CREATE TABLE t AS SELECT '{SECRET}' AS record_id")
    return Published(wh, wh.table_dir("secret") / "data.parquet", public.path, outside_csv, outside_db)


ATTACKS = {
    "read_parquet": "SELECT * FROM read_parquet('{secret_file}')",
    "replacement_scan": "SELECT * FROM '{secret_file}'",
    "read_csv": "SELECT * FROM read_csv('{outside_csv}')",
    "read_text": "SELECT * FROM read_text('/etc/hostname')",
    "glob": "SELECT * FROM glob('{root}/**')",
    "attach": "ATTACH '{outside_db}' AS other",
    "attach_new": "ATTACH '{tmp}/new.duckdb' AS created",
    "copy_to": "COPY (SELECT 'X' AS region_id, 0 AS cases) TO '{public_file}' (FORMAT parquet)",
    "export": "EXPORT DATABASE '{tmp}/exported'",
    "set_external_access": "SET enable_external_access = true",
    "unlock_configuration": "SET lock_configuration = false",
    "reset": "RESET enable_external_access",
    "load_extension": "LOAD httpfs",
    "install_extension": "INSTALL httpfs",
    "write": "CREATE TABLE stolen AS SELECT 1 AS x",
}


def _attack(name: str, p: Published, tmp_path: Path) -> str:
    return ATTACKS[name].format(
        secret_file=p.secret_file, outside_csv=p.outside_csv, outside_db=p.outside_db, public_file=p.public_file,
        root=p.warehouse.root, tmp=tmp_path,
    )  # fmt: skip


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file under a folder with its content hash."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("attack", ATTACKS)
def test_analyst_connection_refuses_file_database_extension_and_setting_access(
    published: Published, tmp_path: Path, attack: str
) -> None:
    sql = _attack(attack, published, tmp_path)
    before = _fingerprint(tmp_path)
    with published.warehouse.read_catalog() as cat:
        with pytest.raises(duckdb.Error, match="disabled|locked|read-only"):
            cat.execute(sql).fetchall()
        assert cat.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is False
        assert cat.execute("SELECT cases FROM counts").fetchall() == [(7,)], "the catalog itself still answers"
        attached = cat.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()
        assert attached == [(published.warehouse.catalog_path.stem,)]
    assert _fingerprint(tmp_path) == before, "nothing was written or created"


def test_catalog_never_names_a_file_and_holds_no_private_row(published: Published) -> None:
    data = published.warehouse.catalog_path.read_bytes()
    assert SECRET.encode() not in data
    assert str(published.warehouse.root).encode() not in data and b".parquet" not in data


def test_query_command_reports_refused_attacks_and_reads_nothing(
    published: Published, small_demo: Path, tmp_path: Path
) -> None:
    cfg = load_config(small_demo)
    moved = cfg.model_copy(update={"warehouse": cfg.warehouse.model_copy(update={"root": published.warehouse.root})})
    config = tmp_path / "config.yaml"
    dump_config(moved, config)
    assert warehouse_for(load_config(config)).catalog_path == published.warehouse.catalog_path
    runner = CliRunner()
    ok = runner.invoke(app, ["query", "--config", str(config), "SELECT cases FROM counts"])
    assert ok.exit_code == 0 and "7" in ok.output
    before = _fingerprint(tmp_path)
    for attack in ("read_parquet", "read_csv", "attach", "copy_to", "set_external_access"):
        result = runner.invoke(app, ["query", "--config", str(config), _attack(attack, published, tmp_path)])
        assert result.exit_code == 2, (attack, result.output)
        assert SECRET not in result.output
        assert "disabled by configuration" in result.output or "configuration has been locked" in result.output
    assert _fingerprint(tmp_path) == before
