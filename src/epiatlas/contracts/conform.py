"""Cast a computed relation to its contract's column order and types before it is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from epiatlas.contracts.model import Contract
from epiatlas.contracts.sql import ident

if TYPE_CHECKING:
    import pandas as pd

    from epiatlas.warehouse import Warehouse, WrittenTable


def conformed_select(contract: Contract, relation: str) -> str:
    """`SELECT CAST(c AS <type>) AS c, ...` over `relation`, in contract order (pandas int64 -> INTEGER, ...)."""
    columns = ", ".join(f"CAST({ident(c.name)} AS {c.type}) AS {ident(c.name)}" for c in contract.columns)
    return f"SELECT {columns} FROM {ident(relation)}"


def write_conformed(
    warehouse: Warehouse, contract: Contract, frame: pd.DataFrame, partition: tuple[str, str] | None = None
) -> WrittenTable:
    """Store a computed frame as the contract's table (or one partition), with its column order and types.

    Typing matters most for an empty frame: pandas gives its columns no type, and a partition written untyped
    would record the partition column as NULL for the whole table.
    """
    with warehouse.connect(()) as con:
        con.register("_frame", frame)
        return warehouse.write_table(con, contract.name, conformed_select(contract, "_frame"), partition)
