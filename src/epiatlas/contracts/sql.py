"""Tiny helpers to write SQL safely: quoted identifiers and string literals."""

from __future__ import annotations

from collections.abc import Iterable


def ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def idents(names: Iterable[str]) -> str:
    """Comma-separated quoted identifiers."""
    return ", ".join(ident(n) for n in names)


def quoted_value(expr: str) -> str:
    """SQL that shows a value in a message: quoted, or NULL."""
    return f"coalesce('''' || CAST({expr} AS VARCHAR) || '''', 'NULL')"
