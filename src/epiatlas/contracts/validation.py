"""Validation SQL for ingest: one scan that types every column and flags every broken rule.

The raw relation has `__file`, `__row_number` (1-based data row) and one column per canonical column found
in the file, holding raw text (or a value already of the contract type, see RawLayout). Rows go through
four projections: cleaned text -> typed values -> one boolean per check -> rule list, message and raw JSON
(built only for failing rows). Duplicate keys need the whole table, so they are found afterwards by one
aggregation over the key columns of the checked table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from epiatlas.contracts.checks import Check, foreign_key_checks, not_null_checks, row_rule_checks, value_checks
from epiatlas.contracts.model import ColumnSpec, Contract
from epiatlas.contracts.sql import ident, idents, literal, quoted_value

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_TRANSFORMS = {
    "upper": "upper({})",
    "lower": "lower({})",
    "remove_dots": "replace({}, '.', '')",
    "remove_spaces": "replace({}, ' ', '')",
}
ROW_COLUMNS = ("__file", "__row_number")


@dataclass(frozen=True)
class RawLayout:
    """How a raw relation maps onto a contract: which canonical columns it holds and how to read them.

    `file_columns` maps canonical names to the file's column names (the keys of the raw JSON). Columns in
    `typed_columns` already hold their contract type (computed by the reader, or typed in a Parquet file) and
    skip text parsing; every other column present holds raw text.
    """

    relation: str
    file_columns: dict[str, str]
    typed_columns: frozenset[str] = frozenset()
    recode: dict[str, dict[str, str]] = field(default_factory=dict)
    date_format: str | None = None
    reader_checks: tuple[Check, ...] = ()


def _raw(name: str) -> str:
    return ident(f"__raw_{name}")


def _text(name: str) -> str:
    return ident(f"__txt_{name}")


def _cleaned_text(spec: ColumnSpec, layout: RawLayout) -> str:
    """Trimmed text ('' -> NULL), recoded, then transformed as the contract says."""
    expr = f"nullif(trim({_raw(spec.name)}), '')"
    mapping = layout.recode.get(spec.name)
    if mapping:
        whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in mapping.items())
        expr = f"CASE {expr} {whens} ELSE {expr} END"
    for name in spec.transform:
        expr = _TRANSFORMS[name].format(expr)
    return f"nullif({expr}, '')" if spec.transform else expr


def _typed(spec: ColumnSpec, layout: RawLayout) -> str:
    """The text of a column cast to its contract type; NULL when it cannot be."""
    text = _text(spec.name)
    if spec.type in _INTEGER_TYPES:
        number = f"try_cast({text} AS DOUBLE)"
        return f"CASE WHEN {number} = trunc({number}) THEN try_cast({number} AS {spec.type}) END"
    if spec.type == "DATE" and layout.date_format:
        return f"coalesce(try_strptime({text}, {literal(layout.date_format)})::DATE, try_cast({text} AS DATE))"
    if spec.type == "VARCHAR":
        return text
    return f"try_cast({text} AS {spec.type})"


def _absent(spec: ColumnSpec) -> str:
    """Value of a column the file lacks: generated from file and row, or NULL."""
    if spec.generate == "file_row":
        return "concat(__file, ':', __row_number)"
    return f"CAST(NULL AS {spec.type})"


def _text_columns(contract: Contract, layout: RawLayout) -> list[ColumnSpec]:
    return [c for c in contract.columns if c.name in layout.file_columns and c.name not in layout.typed_columns]


def _typed_relation_sql(contract: Contract, layout: RawLayout) -> str:
    """Projection with raw text, cleaned text and typed canonical columns (reader columns pass through)."""
    texts = _text_columns(contract, layout)
    renamed = [f"{ident(c.name)} AS {_raw(c.name)}" for c in texts]
    level1 = f"* EXCLUDE ({idents(c.name for c in texts)}), {', '.join(renamed)}" if texts else "*"
    level2 = ", ".join(f"{_cleaned_text(c, layout)} AS {_text(c.name)}" for c in texts)
    typed = "".join(
        f", {_typed(c, layout) if c in texts else _absent(c)} AS {ident(c.name)}"
        for c in contract.columns
        if c.name not in layout.typed_columns
    )
    inner = f"SELECT {level1} FROM {layout.relation}"
    cleaned = f"SELECT *{', ' + level2 if level2 else ''} FROM ({inner})"
    return f"SELECT *{typed} FROM ({cleaned})"


def _expected_text(spec: ColumnSpec, layout: RawLayout) -> str:
    """What a value of this column should look like, for type messages."""
    if spec.type != "DATE":
        return f"a valid {spec.type}"
    if layout.date_format:
        return f"a date in format {layout.date_format} or yyyy-mm-dd"
    return "a date in format yyyy-mm-dd (set date_format for other formats)"


def _type_checks(contract: Contract, layout: RawLayout) -> list[Check]:
    """Text present but not castable (type), or a number that is not whole in an integer column (integer)."""
    checks = []
    for c in _text_columns(contract, layout):
        shown = f"{literal(c.name + ': ')} || {quoted_value(_text(c.name))}"
        number = f"try_cast({_text(c.name)} AS DOUBLE)"
        if c.type in _INTEGER_TYPES:
            checks.append(Check("contract_values", "integer", c.name, f"{number} <> trunc({number})",
                                f"{shown} || ' is not a whole number'"))
            whole = f"{number} IS NOT DISTINCT FROM trunc({number})"
            failed = f"{_text(c.name)} IS NOT NULL AND {ident(c.name)} IS NULL AND {whole}"
        else:
            failed = f"{_text(c.name)} IS NOT NULL AND {ident(c.name)} IS NULL"
        expected = _expected_text(c, layout)
        checks.append(Check("contract_values", "type", c.name, failed, f"{shown} || {literal(' is not ' + expected)}"))
    return checks


def _missing_in(contract: Contract, layout: RawLayout) -> Callable[[str], str]:
    texts = {c.name for c in _text_columns(contract, layout)}
    return lambda name: f"{_text(name) if name in texts else ident(name)} IS NULL"


def ingest_checks(contract: Contract, layout: RawLayout) -> list[Check]:
    """Every per-row check of a contract in ingest order (without the primary key)."""
    integer_texts = frozenset(c.name for c in _text_columns(contract, layout) if c.type in _INTEGER_TYPES)
    return [
        *not_null_checks(contract, _missing_in(contract, layout)),
        *_type_checks(contract, layout),
        *value_checks(contract, integer_texts),
        *foreign_key_checks(contract),
        *row_rule_checks(contract),
    ]


def raw_json_sql(layout: RawLayout, renamed: bool = True) -> str:
    """JSON object of a row's raw values keyed by the file's column names (`renamed`: inside checked_sql)."""
    def value(name: str) -> str:
        if name in layout.typed_columns:
            return f"CAST({ident(name)} AS VARCHAR)"
        return _raw(name) if renamed else ident(name)

    pairs = ", ".join(f"{literal(file_col)}, {value(name)}" for name, file_col in layout.file_columns.items())
    return f"json_object({pairs})::VARCHAR"


def checked_sql(contract: Contract, layout: RawLayout) -> str:
    """One scan: typed canonical columns plus __rules, __columns, __message, __raw_values (NULL when clean)."""
    checks = [*ingest_checks(contract, layout), *layout.reader_checks]
    flags = "".join(f", coalesce({c.failed}, false) AS __f{i}" for i, c in enumerate(checks))
    any_failed = " OR ".join(f"__f{i}" for i in range(len(checks))) or "false"

    def listed(separator: str, parts: list[str]) -> str:
        if not parts:
            return "CAST(NULL AS VARCHAR)"
        whens = ", ".join(f"CASE WHEN __f{i} THEN {p} END" for i, p in enumerate(parts))
        return f"CASE WHEN {any_failed} THEN concat_ws({literal(separator)}, {whens}) END"

    return f"""
SELECT __file, __row_number, {idents(contract.column_names)},
       {listed(',', [literal(c.rule) for c in checks])} AS __rules,
       {listed(',', [literal(c.column) for c in checks])} AS __columns,
       {listed('; ', [c.message for c in checks])} AS __message,
       CASE WHEN {any_failed} THEN {raw_json_sql(layout)} END AS __raw_values
FROM (SELECT *{flags} FROM ({_typed_relation_sql(contract, layout)}))"""


def duplicates_sql(contract: Contract, checked: str) -> str:
    """Rows of `checked` whose key an earlier (file, row number) already had, with the message naming that row.

    Keys are grouped first and only repeated keys are windowed, so a file without duplicates costs one
    aggregation over the key columns.
    """
    keys = idents(contract.primary_key)
    required = [k for k in contract.primary_key if not contract.column(k).nullable]
    key_filter = " AND ".join(f"{ident(k)} IS NOT NULL" for k in required) or "true"
    join = " AND ".join(f"k.{ident(c)} IS NOT DISTINCT FROM d.{ident(c)}" for c in contract.primary_key)
    shown = " || ', ' || ".join(f"{literal(k + '=')} || {quoted_value('k.' + ident(k))}" for k in contract.primary_key)
    partition = ", ".join(f"k.{ident(c)}" for c in contract.primary_key)
    window = f"PARTITION BY {partition} ORDER BY k.__file, k.__row_number"
    first_file, first_row = f"first_value(k.__file) OVER ({window})", f"first_value(k.__row_number) OVER ({window})"
    message = (f"'duplicate key ' || {shown} || ': first seen at row ' || {first_row}"
               f" || CASE WHEN {first_file} <> k.__file THEN ' of ' || {first_file} ELSE '' END")
    return f"""
WITH d AS (SELECT {keys} FROM {checked} WHERE {key_filter} GROUP BY ALL HAVING count(*) > 1)
SELECT k.__file, k.__row_number, {literal('+'.join(contract.primary_key))} AS __column, {message} AS __message
FROM {checked} k JOIN d ON {join}
QUALIFY row_number() OVER ({window}) > 1"""
