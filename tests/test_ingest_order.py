"""The staged table keeps file order, run after run, without sorting (ingest relies on it to find rows)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from epiatlas.contracts import load_contract
from epiatlas.contracts.model import RowRule
from tests.ingest_fixtures import connection_with_regions, ingest, quarantine_rows

ROWS = 120_000


def _records(path: Path, start: int, rows: int, seed: int) -> dict[int, str]:
    """A Parquet file of stays in several row groups, with some broken rows; returns the expected problems."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + rows)
    age = rng.integers(0, 100, rows).astype(np.int32)
    region = np.where(rng.random(rows) < 0.5, "R1", "R2").astype(object)
    record_id = ids.astype(str).astype(object)
    problems = {}
    for i in rng.choice(rows, 40, replace=False):
        kind = i % 3
        if kind == 0:
            age[i] = 130
            problems[i] = "range"
        elif kind == 1:
            region[i] = "R9"
            problems[i] = "foreign_key"
        elif i > 0:
            record_id[i] = record_id[i - 1]
            problems[i] = "primary_key"
    table = pa.table({
        "record_id": pa.array(record_id, pa.string()),
        "admission_date": pa.array(np.full(rows, np.datetime64("2020-01-01", "D"))),
        "discharge_date": pa.array(np.full(rows, np.datetime64("2020-01-03", "D"))),
        "region_id": pa.array(region, pa.string()),
        "age": pa.array(age),
        "sex": pa.array(np.where(ids % 2 == 0, "M", "F")),
        "icd10": pa.array(np.where(ids % 3 == 0, "E11.9", "J189")),
        "discharge_status": pa.array(np.full(rows, "alive")),
    })
    pq.write_table(table, path, row_group_size=10_000)
    return {start + i + 1: rule for i, rule in problems.items()}  # keyed by the row number in the file


def _staged(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT record_id, region_id, age FROM staged_hospitalizations").fetchall()


@pytest.mark.parametrize("preserve_order", [True, False])
def test_staged_rows_keep_file_order_every_run(tmp_path: Path, preserve_order: bool) -> None:
    expected = _records(tmp_path / "stays.parquet", 0, ROWS, seed=7)
    runs = []
    for _ in range(3):
        con = connection_with_regions()
        con.execute("SET threads = 2")
        con.execute(f"SET preserve_insertion_order = {str(preserve_order).lower()}")
        result = ingest(con, "hospitalizations", tmp_path / "stays.parquet")
        # the caller's setting is left as it was
        assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0] is preserve_order
        rows = quarantine_rows(con, result)
        assert {r["row_number"]: r["rules"] for r in rows} == expected
        runs.append(_staged(con))
    assert runs[0] == runs[1] == runs[2]
    ids = [int(r[0]) for r in runs[0]]
    assert ids == sorted(ids)  # record ids rise with the row number, so file order means sorted
    assert len(ids) == ROWS - len(expected)


def test_staged_rows_follow_file_name_order_across_files(tmp_path: Path) -> None:
    second = _records(tmp_path / "b.parquet", ROWS, 30_000, seed=3)
    first = _records(tmp_path / "a.parquet", 0, 30_000, seed=5)
    con = connection_with_regions()
    result = ingest(con, "hospitalizations", tmp_path / "*.parquet")
    rows = quarantine_rows(con, result)
    assert [(r["file"], r["row_number"]) for r in rows] == (
        [("a.parquet", n) for n in sorted(first)] + [("b.parquet", n - ROWS) for n in sorted(second)]
    )
    ids = [int(r[0]) for r in _staged(con)]
    assert ids == sorted(ids)


def test_rule_with_a_subquery_still_gives_file_order(tmp_path: Path) -> None:
    """A join in the scan would let DuckDB reorder rows; ingest then sorts, with the same result."""
    expected = _records(tmp_path / "stays.parquet", 0, 50_000, seed=11)
    contract = load_contract("hospitalizations")
    rule = RowRule(name="known_region", columns=["region_id"],
                   sql="region_id IN (SELECT region_id FROM regions)", description="region must exist")
    contract = contract.model_copy(update={"rules": [*contract.rules, rule]})
    con = connection_with_regions()
    from epiatlas.config import SourceConfig
    from epiatlas.ingest import ingest_source

    result = ingest_source(con, "hospitalizations", SourceConfig(path=tmp_path / "stays.parquet"), contract)
    rules = {r["row_number"]: r["rules"] for r in quarantine_rows(con, result)}
    assert rules == {n: ("foreign_key,known_region" if rule == "foreign_key" else rule)
                     for n, rule in expected.items()}
    ids = [int(r[0]) for r in _staged(con)]
    assert ids == sorted(ids)
