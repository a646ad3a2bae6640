"""Turn written tables into Dagster metadata: row count and a column schema described by the contract."""

from __future__ import annotations

from typing import Any

import dagster as dg

from epiatlas.contracts import Contract
from epiatlas.warehouse import WrittenTable


def table_metadata(contract: Contract, *written: WrittenTable) -> dict[str, Any]:
    """Row count (summed over partitions written), the contract's columns with stored types and units, location."""
    types = dict(written[0].schema)
    columns = [
        dg.TableColumn(
            name=c.name,
            type=types.get(c.name, c.type),
            description=c.description + (f" [{c.unit}]" if c.unit else ""),
        )
        for c in contract.columns
    ]
    return {
        "dagster/row_count": sum(w.rows for w in written),
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "location": dg.MetadataValue.path(str(written[0].table_dir)),
        "privacy": contract.privacy,
    }
