"""Computed frames are stored with their contract's types, also when empty (no untyped partition column)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from epiatlas.contracts import load_contract
from epiatlas.contracts.conform import write_conformed
from epiatlas.warehouse import Warehouse


def test_empty_frame_keeps_the_partition_column_typed(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    contract = load_contract("quarantine")
    row = {"source": "census", "file": "censo.csv", "row_number": 3, "columns": "population", "rules": "range",
           "message": "population below 0", "raw_values": "{}", "action": "rejected"}  # fmt: skip
    write_conformed(warehouse, contract, pd.DataFrame([row]), partition=("source", "census"))
    write_conformed(warehouse, contract, pd.DataFrame(columns=list(row)), partition=("source", "cxr_images"))
    assert warehouse.partitioning("quarantine") == ("source", "VARCHAR")
    with warehouse.connect(["quarantine"]) as con:
        assert con.execute("SELECT source, row_number FROM quarantine").fetchall() == [("census", 3)]
        types = {r[0]: r[1] for r in con.execute("DESCRIBE quarantine").fetchall()}
    assert types["row_number"] == "BIGINT" and types["source"] == "VARCHAR"
