"""Asset checks generated from a table's contract: one Dagster check per rule kind the contract declares."""

import dagster as dg

from epiatlas.contracts import check_names, evaluate_contract, load_contract
from orchestration.resources import EpiatlasResource


def build_contract_checks(table: str) -> dg.AssetChecksDefinition | None:
    """Re-check the stored table against `data_contracts/<table>.yaml` (keys, nulls, values, references, rules)."""
    contract = load_contract(table)
    names = check_names(contract)
    if not names:
        return None
    refs = sorted({c.references.split(".")[0] for c in contract.columns if c.references} - {table})

    @dg.multi_asset_check(
        name=f"{table}_contract",
        specs=[dg.AssetCheckSpec(name, asset=table, description=text) for name, text in names.items()],
        can_subset=True,
    )
    def _checks(context: dg.AssetCheckExecutionContext, epiatlas: EpiatlasResource):
        wanted = {key.name for key in context.selected_asset_check_keys}
        with epiatlas.warehouse().connect([table, *refs]) as con:
            for result in evaluate_contract(con, contract, table):
                if result.check_name in wanted:
                    yield dg.AssetCheckResult(
                        asset_key=table,
                        check_name=result.check_name,
                        passed=result.passed,
                        description=result.message,
                        metadata={"failing_rows": result.failing_rows, "examples": str(result.examples)},
                    )

    return _checks
