"""Re-check an already staged table against its contract; one result per rule kind (one asset check each)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from epiatlas.contracts.checks import Check, foreign_key_checks, not_null_checks, row_rule_checks, value_checks
from epiatlas.contracts.model import Contract
from epiatlas.contracts.sql import ident, idents, literal

EXAMPLE_LIMIT = 5


@dataclass(frozen=True)
class RuleResult:
    """Outcome of one group of contract rules on a table."""

    check_name: str
    passed: bool
    failing_rows: int
    examples: tuple[str, ...]
    message: str


def _example_columns(contract: Contract, present: set[str]) -> list[str]:
    keys = [k for k in contract.primary_key if k in present]
    return keys or [c for c in contract.column_names if c in present][:1]


def _describe_row(columns: list[str]) -> str:
    """SQL that renders the identifying columns of a row, e.g. `record_id=A1`."""
    return " || ', ' || ".join(f"{literal(c + '=')} || coalesce(CAST({ident(c)} AS VARCHAR), 'NULL')" for c in columns)


def _schema_result(contract: Contract, actual: dict[str, str]) -> RuleResult:
    problems = [
        f"{c.name}: missing" if c.name not in actual else f"{c.name}: {actual[c.name]} instead of {c.type}"
        for c in contract.columns
        if actual.get(c.name) != c.type
    ]
    message = "; ".join(problems) or f"all {len(contract.columns)} columns present with their contract types"
    return RuleResult("contract_schema", not problems, len(problems), tuple(problems[:EXAMPLE_LIMIT]), message)


def _checks_result(con: duckdb.DuckDBPyConnection, relation: str, name: str, checks: list[Check],
                   example_columns: list[str]) -> RuleResult:
    failed = " OR ".join(f"coalesce({c.failed}, false)" for c in checks)
    count = con.execute(f"SELECT count(*) FROM {ident(relation)} WHERE {failed}").fetchone()[0]
    examples = con.execute(
        f"SELECT {_describe_row(example_columns)} FROM {ident(relation)} WHERE {failed} "
        f"ORDER BY {idents(example_columns)} LIMIT {EXAMPLE_LIMIT}"
    ).fetchall()
    rules = sorted({f"{c.rule}({c.column})" for c in checks})
    return RuleResult(name, count == 0, count, tuple(e[0] for e in examples), f"{count} rows break {', '.join(rules)}")


def _primary_key_result(con: duckdb.DuckDBPyConnection, relation: str, contract: Contract) -> RuleResult:
    keys = idents(contract.primary_key)
    duplicated = f"SELECT {keys}, count(*) AS n FROM {ident(relation)} GROUP BY ALL HAVING count(*) > 1"
    count = con.execute(f"SELECT coalesce(sum(n - 1), 0) FROM ({duplicated})").fetchone()[0]
    examples = con.execute(
        f"SELECT {_describe_row(contract.primary_key)} FROM ({duplicated}) ORDER BY {keys} LIMIT {EXAMPLE_LIMIT}"
    ).fetchall()
    message = f"{count} rows repeat a key ({', '.join(contract.primary_key)}) of an earlier row"
    return RuleResult("contract_primary_key", count == 0, int(count), tuple(e[0] for e in examples), message)


def _row_checks(contract: Contract) -> dict[str, list[Check]]:
    """Per-row checks by check name, only for the kinds the contract declares."""
    groups = {
        "contract_not_null": not_null_checks(contract),
        "contract_values": value_checks(contract),
        "contract_foreign_keys": foreign_key_checks(contract),
        "contract_row_rules": row_rule_checks(contract),
    }
    return {name: checks for name, checks in groups.items() if checks}


def check_names(contract: Contract) -> dict[str, str]:
    """The checks evaluate_contract emits for this contract (stable names), each with a description."""
    names = {"contract_schema": "every contract column is present with its contract type"}
    if contract.primary_key:
        names["contract_primary_key"] = f"no two rows share a key ({', '.join(contract.primary_key)})"
    for name, checks in _row_checks(contract).items():
        names[name] = "rows meet " + ", ".join(sorted({f"{c.rule}({c.column})" for c in checks}))
    return names


def evaluate_contract(con: duckdb.DuckDBPyConnection, contract: Contract, relation: str) -> list[RuleResult]:
    """Check table/view `relation` against every rule kind the contract has; a broken schema fails the rest unrun."""
    actual = {name: dtype for name, dtype, *_ in con.execute(f"DESCRIBE {ident(relation)}").fetchall()}
    schema = _schema_result(contract, actual)
    if not schema.passed:
        skipped = [RuleResult(name, False, 0, (), f"not evaluated: {schema.message}")
                   for name in check_names(contract) if name != schema.check_name]
        return [schema, *skipped]
    results = [schema]
    if contract.primary_key:
        results.append(_primary_key_result(con, relation, contract))
    example_columns = _example_columns(contract, set(actual))
    results += [_checks_result(con, relation, name, checks, example_columns)
                for name, checks in _row_checks(contract).items()]
    return results
