"""Contract rules as SQL predicates over canonical (typed) columns, shared by ingest and evaluate_contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from epiatlas.contracts.model import ColumnSpec, Contract, RowRule
from epiatlas.contracts.sql import ident, literal, quoted_value


@dataclass(frozen=True)
class Check:
    """One rule on one column (or row): `failed` is a SQL boolean, `message` a SQL string for a failing row."""

    check_name: str
    rule: str
    column: str
    failed: str
    message: str


def _is_null(column: str) -> str:
    return f"{ident(column)} IS NULL"


def _number(value: float) -> str:
    return f"{value:g}"


def _range_text(spec: ColumnSpec) -> str:
    low = "-inf" if spec.min is None else _number(spec.min)
    high = "inf" if spec.max is None else _number(spec.max)
    return f"[{low}, {high}]" + (f" {spec.unit}" if spec.unit else "")


def not_null_checks(contract: Contract, is_missing: Callable[[str], str] = _is_null) -> list[Check]:
    """Non-nullable columns must hold a value; `is_missing` says how a missing value looks."""
    return [
        Check("contract_not_null", "not_null", c.name, is_missing(c.name), literal(f"{c.name}: missing value"))
        for c in contract.columns
        if not c.nullable
    ]


INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
)


def _bound(spec: ColumnSpec, value: float) -> str:
    """A range bound as a SQL literal: whole bounds of integer columns as integers, so the column is compared
    as it is (a literal like 120.0 would make DuckDB cast every value to DECIMAL first; same result, slower)."""
    if spec.type in INTEGER_TYPES and float(value).is_integer():
        return str(int(value))
    return repr(value)


def _pattern_failed(col: str, pattern: str) -> str:
    """SQL: the value does not fully match `pattern` (NULL passes); same truth as NOT regexp_full_match.

    regexp_extract of the anchored pattern returns the whole value when it matches and '' when not. Unlike
    regexp_full_match, DuckDB evaluates it once per dictionary entry on dictionary-encoded input (codes read
    from Parquet), instead of once per row. '' itself is ambiguous, so it matches only if the pattern
    matches '' (a constant, folded when the query is planned).
    """
    text = f"CAST({col} AS VARCHAR)"
    extracted = f"regexp_extract({text}, {literal('^(?:' + pattern + ')$')})"
    empty_matches = f"regexp_full_match('', {literal(pattern)})"
    return f"({text} IS NOT NULL AND NOT ({extracted} = {text} AND ({text} <> '' OR {empty_matches})))"


def _value_checks_of(spec: ColumnSpec, whole_number_checked: bool) -> list[Check]:
    col = ident(spec.name)
    shown = f"{literal(spec.name + ': ')} || {quoted_value(col)}"
    checks: list[Check] = []
    if spec.min is not None or spec.max is not None:
        bounds = [f"{col} < {_bound(spec, spec.min)}" if spec.min is not None else None,
                  f"{col} > {_bound(spec, spec.max)}" if spec.max is not None else None]
        failed = " OR ".join(b for b in bounds if b)
        checks.append(Check("contract_values", "range", spec.name, f"({failed})",
                            f"{shown} || {literal(' is outside ' + _range_text(spec))}"))
    if spec.integer and not whole_number_checked:
        checks.append(Check("contract_values", "integer", spec.name, f"{col} <> trunc({col})",
                            f"{shown} || ' is not a whole number'"))
    if spec.allowed is not None:
        values = ", ".join(literal(v) for v in spec.allowed)
        checks.append(Check("contract_values", "allowed", spec.name, f"CAST({col} AS VARCHAR) NOT IN ({values})",
                            f"{shown} || {literal(' is not one of ' + ', '.join(spec.allowed))}"))
    if spec.pattern is not None:
        checks.append(Check("contract_values", "pattern", spec.name, _pattern_failed(col, spec.pattern),
                            f"{shown} || {literal(' does not match ' + spec.pattern)}"))
    return checks


def value_checks(contract: Contract, whole_numbers_checked: frozenset[str] = frozenset()) -> list[Check]:
    """Range, integer-ness, allowed values and pattern of each column (NULLs pass)."""
    return [check for c in contract.columns for check in _value_checks_of(c, c.name in whole_numbers_checked)]


def foreign_key_checks(contract: Contract) -> list[Check]:
    """Each `references` column must hold a value present in the referenced table (NULLs pass)."""
    checks = []
    for c in contract.columns:
        if c.references is None:
            continue
        ref_table, ref_col = ident(c.reference_table or ""), ident(c.reference_column or "")
        col = ident(c.name)
        failed = f"({col} IS NOT NULL AND {col} NOT IN (SELECT {ref_col} FROM {ref_table} WHERE {ref_col} IS NOT NULL))"
        message = f"{literal(c.name + ': ')} || {quoted_value(col)} || {literal(' not found in ' + c.references)}"
        checks.append(Check("contract_foreign_keys", "foreign_key", c.name, failed, message))
    return checks


def _row_rule_message(rule: RowRule) -> str:
    """'<rule> failed for a=.., b=..: <description or SQL>' as a SQL string expression."""
    values = " || ', ' || ".join(f"{literal(c + '=')} || {quoted_value(ident(c))}" for c in rule.columns)
    reason = rule.description or " ".join(rule.sql.split())
    return f"{literal(rule.name + ' failed for ')} || {values} || {literal(': ' + reason)}"


def row_rule_checks(contract: Contract) -> list[Check]:
    """Row rules; a rule that evaluates to NULL (a value missing) passes, as in a SQL CHECK constraint."""
    return [
        Check("contract_row_rules", r.name, "+".join(r.columns), f"NOT coalesce(({r.sql}), true)", _row_rule_message(r))
        for r in contract.rules
    ]


def referenced_tables(contract: Contract) -> list[str]:
    """Tables that the contract's foreign keys point at."""
    return sorted({c.reference_table for c in contract.columns if c.reference_table})
