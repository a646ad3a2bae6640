"""Pydantic models of the contract YAML format described in docs/DESIGN.md."""

from __future__ import annotations

import functools
import re
from typing import Literal

import duckdb
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Transform = Literal["upper", "lower", "remove_dots", "remove_spaces"]
_TYPE_SYNTAX = re.compile(r"^[A-Za-z][A-Za-z0-9_ ,()\[\]]*$")
_REFERENCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


@functools.cache
def canonical_type(type_name: str) -> str | None:
    """DuckDB's own spelling of `type_name` (INT -> INTEGER), or None when DuckDB has no such type."""
    if not _TYPE_SYNTAX.match(type_name):
        return None
    try:
        with duckdb.connect() as con:
            row = con.execute(f"SELECT typeof(CAST(NULL AS {type_name}))").fetchone()
    except duckdb.Error:
        return None
    return row[0] if row else None


class _Strict(BaseModel):
    """Rejects unknown keys so a typo in a contract fails loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One canonical column: its DuckDB type and the value rules a row must meet."""

    name: str
    type: str
    description: str = ""
    nullable: bool = False
    optional: bool = False
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    integer: bool = False
    allowed: list[str] | None = None
    pattern: str | None = None
    references: str | None = None
    transform: list[Transform] = []
    generate: Literal["file_row"] | None = None
    derived: bool = False

    @field_validator("type")
    @classmethod
    def _duckdb_type(cls, v: str) -> str:
        canonical = canonical_type(v)
        if canonical is None:
            raise ValueError(f"{v!r} is not a DuckDB type (e.g. VARCHAR, INTEGER, BIGINT, DOUBLE, DATE, BOOLEAN, BLOB)")
        return canonical

    @field_validator("references")
    @classmethod
    def _table_dot_column(cls, v: str | None) -> str | None:
        if v is not None and not _REFERENCE.match(v):
            raise ValueError(f"{v!r} is not of the form table.column")
        return v

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"{v!r} is not a regular expression: {exc}") from exc
        return v

    @field_validator("allowed", mode="before")
    @classmethod
    def _as_strings(cls, v: list[object] | None) -> list[str] | None:
        return None if v is None else [str(x) for x in v]

    @model_validator(mode="after")
    def _ordered_range(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    @property
    def reference_table(self) -> str | None:
        """The table named by `references`, if any."""
        return self.references.split(".", 1)[0] if self.references else None

    @property
    def reference_column(self) -> str | None:
        """The column named by `references`, if any."""
        return self.references.split(".", 1)[1] if self.references else None


class RowRule(_Strict):
    """A SQL boolean over canonical columns; a row for which it is false is quarantined."""

    name: str
    columns: list[str]
    sql: str
    description: str = ""


class Contract(_Strict):
    """The schema, keys and rules of one table."""

    name: str
    kind: Literal["source", "output"]
    privacy: Literal["private", "public"]
    description: str
    primary_key: list[str] = []
    columns: list[ColumnSpec]
    rules: list[RowRule] = []

    @model_validator(mode="after")
    def _consistent_names(self) -> Contract:
        names = [c.name for c in self.columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"columns listed twice: {duplicated}")
        for where, used in [("primary_key", self.primary_key)] + [
            (f"rules.{r.name}.columns", r.columns) for r in self.rules
        ]:
            unknown = [c for c in used if c not in names]
            if unknown:
                raise ValueError(f"{where} names unknown columns {unknown}; the columns are {names}")
        return self

    def column(self, name: str) -> ColumnSpec:
        """The spec of column `name`."""
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        """Canonical column names in contract order."""
        return [c.name for c in self.columns]
