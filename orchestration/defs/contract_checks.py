"""Asset checks generated from a table's contract: one Dagster check per rule kind the contract declares.

They are declared with the asset and evaluated in the asset's own step right after the table is written
(re-reading the stored Parquet), so a run has no extra step, and no extra process, per table.
"""

import dagster as dg

from epiatlas.contracts import Contract, check_names, evaluate_contract
from epiatlas.contracts.checks import referenced_tables
from epiatlas.warehouse import Warehouse


def contract_check_specs(contract: Contract) -> list[dg.AssetCheckSpec]:
    """One spec per rule kind in `data_contracts/<table>.yaml` (schema, keys, nulls, values, references, rules)."""
    return [dg.AssetCheckSpec(name, asset=contract.name, description=text) for name, text in check_names(contract).items()]


def contract_check_results(warehouse: Warehouse, contract: Contract) -> list[dg.AssetCheckResult]:
    """Evaluate the stored table against its contract."""
    with warehouse.connect([contract.name, *referenced_tables(contract)]) as con:
        return [
            dg.AssetCheckResult(
                asset_key=contract.name,
                check_name=result.check_name,
                passed=result.passed,
                description=result.message,
                # Examples name keys; for a private table (record ids) they stay out of the UI.
                metadata={"failing_rows": result.failing_rows}
                | ({"examples": str(result.examples)} if contract.privacy == "public" else {}),
            )
            for result in evaluate_contract(con, contract, contract.name)
        ]
