"""Validation SQL for ingest: one scan that types every column and flags every broken rule.

The raw relation has `__file`, `__row_number` (1-based data row) and one column per canonical column found
in the file, holding raw text (or a value already of the contract type, see RawLayout). Rows go through
four projections: cleaned text -> typed values -> one boolean per check -> rule list, message and raw JSON
(built only for failing rows).

Ingest (see epiatlas.ingest.staging) runs `staging_sql` once over the whole relation: it holds only row-local
checks, so the scan stays a join-free, order-preserving pipeline. Checks that need other rows or tables
(foreign keys, duplicate keys) run afterwards on the typed table, and the few rows they catch are
re-checked in full by `checked_sql` for their quarantine entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from epiatlas.contracts.checks import (
    INTEGER_TYPES,
    Check,
    foreign_key_checks,
    not_null_checks,
    row_rule_checks,
    value_checks,
)
from epiatlas.contracts.model import ColumnSpec, Contract
from epiatlas.contracts.sql import ident, idents, literal, quoted_value

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
    files: tuple[tuple[str, int], ...] = ()
    """(file name, data rows) in the relation's order; each file's rows are numbered 1..rows in that order."""


def _raw(name: str) -> str:
    return ident(f"__raw_{name}")


def _text(name: str) -> str:
    return ident(f"__txt_{name}")


def _trimmed(column: str) -> str:
    """trim(column), skipped where it cannot change anything.

    trim removes Unicode space separators; the only ASCII one is ' '. So pure ASCII text (as many bytes as
    characters) without a ' ' is returned as is: two cheap tests instead of trim's per-character decoding,
    which is most of the cleaning cost on a column of distinct values such as record ids.
    """
    plain = f"strlen({column}) = length({column}) AND NOT contains({column}, ' ')"
    return f"CASE WHEN {plain} THEN {column} ELSE trim({column}) END"


def _cleaned_text(spec: ColumnSpec, layout: RawLayout) -> str:
    """Trimmed text ('' -> NULL), recoded, then transformed as the contract says."""
    expr = f"nullif({_trimmed(_raw(spec.name))}, '')"
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
    if spec.type in INTEGER_TYPES:
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
        if c.type == "VARCHAR":
            continue  # the cleaned text is the value: nothing to cast, nothing can fail
        shown = f"{literal(c.name + ': ')} || {quoted_value(_text(c.name))}"
        number = f"try_cast({_text(c.name)} AS DOUBLE)"
        if c.type in INTEGER_TYPES:
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


def ingest_checks(contract: Contract, layout: RawLayout, foreign_keys: bool = True) -> list[Check]:
    """Every per-row check of a contract in ingest order (without the primary key; `foreign_keys`: with them)."""
    integer_texts = frozenset(c.name for c in _text_columns(contract, layout) if c.type in INTEGER_TYPES)
    return [
        *not_null_checks(contract, _missing_in(contract, layout)),
        *_type_checks(contract, layout),
        *value_checks(contract, integer_texts),
        *(foreign_key_checks(contract) if foreign_keys else []),
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


def _failure_columns(checks: list[Check]) -> tuple[str, dict[str, str]]:
    """The `__failed` column (`, (<any check failed>) AS __failed`) and, per output, the SQL for a row where
    it is true: the comma-joined rules, columns and '; '-joined messages of the checks it fails.

    A check whose SQL is NULL has not failed: `__failed` is then NULL or false, and so is each `CASE WHEN`.
    `__failed` is one vectorised OR over every row; the per-check lists are built only for failing rows
    (CASE evaluates its THEN branch on the matching rows alone), so clean rows cost one boolean column.
    """
    if not checks:
        empty = "CAST(NULL AS VARCHAR)"
        return ", false AS __failed", {"__rules": empty, "__columns": empty, "__message": empty}
    failed = " OR ".join(f"({c.failed})" for c in checks)

    def listed(separator: str, parts: list[str]) -> str:
        whens = ", ".join(f"CASE WHEN {c.failed} THEN {p} END" for c, p in zip(checks, parts))
        return f"concat_ws({literal(separator)}, {whens})"

    return f", ({failed}) AS __failed", {
        "__rules": listed(",", [literal(c.rule) for c in checks]),
        "__columns": listed(",", [literal(c.column) for c in checks]),
        "__message": listed("; ", [c.message for c in checks]),
    }


def checked_sql(contract: Contract, layout: RawLayout, every_raw_value: bool = False) -> str:
    """One scan: typed canonical columns plus __rules, __columns, __message, __raw_values (NULL when clean).

    With `every_raw_value`, __raw_values holds the raw JSON of clean rows too.
    """
    checks = [*ingest_checks(contract, layout), *layout.reader_checks]
    failed, parts = _failure_columns(checks)
    listed = {name: f"CASE WHEN __failed THEN {parts[name]} END" for name in ("__rules", "__columns", "__message")}
    raw = raw_json_sql(layout) if every_raw_value else f"CASE WHEN __failed THEN {raw_json_sql(layout)} END"
    return f"""
SELECT __file, __row_number, {idents(contract.column_names)},
       {listed['__rules']} AS __rules,
       {listed['__columns']} AS __columns,
       {listed['__message']} AS __message,
       {raw} AS __raw_values
FROM (SELECT *{failed} FROM ({_typed_relation_sql(contract, layout)}))"""


REJECT_FIELDS = ("__file", "__row_number", "__rules", "__columns", "__message", "__raw_values")


def staging_sql(contract: Contract, layout: RawLayout, row_columns: bool = False) -> str:
    """One scan: typed canonical columns plus `__reject`, a JSON object with the REJECT_FIELDS of a row that
    fails a row-local check (every check but foreign keys), NULL for every other row (`row_columns`: with
    __file and __row_number first).

    Without joins the pipeline keeps the relation's row order, so a CREATE TABLE over it stores the rows in
    file order; the clean rows need no second pass and no sort.
    """
    checks = [*ingest_checks(contract, layout, foreign_keys=False), *layout.reader_checks]
    failed, parts = _failure_columns(checks)
    fields = {"__file": "__file", "__row_number": "__row_number", "__rules": parts["__rules"],
              "__columns": parts["__columns"], "__message": parts["__message"],
              "__raw_values": raw_json_sql(layout)}
    reject = f"json_object({', '.join(f'{literal(k)}, {v}' for k, v in fields.items())})::VARCHAR"
    rows = f"{', '.join(ROW_COLUMNS)}, " if row_columns else ""
    return f"""
SELECT {rows}{idents(contract.column_names)},
       CASE WHEN __failed THEN {reject} END AS __reject
FROM (SELECT *{failed} FROM ({_typed_relation_sql(contract, layout)}))"""


def reject_fields_sql(column: str = "__reject") -> str:
    """The REJECT_FIELDS of a `staging_sql` reject object, typed as in checked_sql."""
    fields = [f"{column}->>{literal(f)} AS {f}" for f in REJECT_FIELDS]
    fields[1] = f"CAST({column}->>'__row_number' AS BIGINT) AS __row_number"
    return ", ".join(fields)


def duplicates_sql(contract: Contract, checked: str, carry: tuple[str, ...] = ()) -> str:
    """Rows of `checked` whose key an earlier (file, row number) already had, with the message naming that row.

    Keys are grouped first and only repeated keys are windowed, so a file without duplicates costs one
    aggregation over the key columns. `carry` names further columns of `checked` to pass through.
    """
    keys = idents(contract.primary_key)
    key_filter = key_filter_sql(contract)
    join = " AND ".join(f"k.{ident(c)} IS NOT DISTINCT FROM d.{ident(c)}" for c in contract.primary_key)
    shown = " || ', ' || ".join(f"{literal(k + '=')} || {quoted_value('k.' + ident(k))}" for k in contract.primary_key)
    partition = ", ".join(f"k.{ident(c)}" for c in contract.primary_key)
    window = f"PARTITION BY {partition} ORDER BY k.__file, k.__row_number"
    first_file, first_row = f"first_value(k.__file) OVER ({window})", f"first_value(k.__row_number) OVER ({window})"
    message = (f"'duplicate key ' || {shown} || ': first seen at row ' || {first_row}"
               f" || CASE WHEN {first_file} <> k.__file THEN ' of ' || {first_file} ELSE '' END")
    extra = "".join(f", k.{ident(c)}" for c in carry)
    return f"""
WITH d AS (SELECT {keys} FROM {checked} WHERE {key_filter} GROUP BY ALL HAVING count(*) > 1)
SELECT k.__file, k.__row_number, {literal('+'.join(contract.primary_key))} AS __column, {message} AS __message{extra}
FROM {checked} k JOIN d ON {join}
QUALIFY row_number() OVER ({window}) > 1"""


def key_filter_sql(contract: Contract) -> str:
    """Rows whose key can be a duplicate: those where no required key column is NULL."""
    required = [k for k in contract.primary_key if not contract.column(k).nullable]
    return " AND ".join(f"{ident(k)} IS NOT NULL" for k in required) or "true"
