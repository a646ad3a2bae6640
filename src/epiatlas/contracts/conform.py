"""Cast a computed relation to its contract's column order and types before it is stored."""

from __future__ import annotations

from epiatlas.contracts.model import Contract
from epiatlas.contracts.sql import ident


def conformed_select(contract: Contract, relation: str) -> str:
    """`SELECT CAST(c AS <type>) AS c, ...` over `relation`, in contract order (pandas int64 -> INTEGER, ...)."""
    columns = ", ".join(f"CAST({ident(c.name)} AS {c.type}) AS {ident(c.name)}" for c in contract.columns)
    return f"SELECT {columns} FROM {ident(relation)}"
