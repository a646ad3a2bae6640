"""Turn written tables into Dagster metadata: row count and a column schema described by the contract."""

from __future__ import annotations

from typing import Any

import dagster as dg

from epiatlas.contracts import Contract
from epiatlas.warehouse import WrittenTable


def table_metadata(contract: Contract, *written: WrittenTable) -> dict[str, Any]:
    """Row count (summed over partitions written), column schema with descriptions and units, location."""
    described = {c.name: c for c in contract.columns}
    columns = [
        dg.TableColumn(
            name=name,
            type=dtype,
            description=(described[name].description + (f" [{described[name].unit}]" if described[name].unit else ""))
            if name in described
            else None,
        )
        for name, dtype in written[0].schema
    ]
    return {
        "dagster/row_count": sum(w.rows for w in written),
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "location": dg.MetadataValue.path(str(written[0].path.parent)),
        "privacy": contract.privacy,
    }
