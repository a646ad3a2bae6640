"""ICD-10 case definitions (codes like `E11`, `E11.9`, ranges like `E10-E14`) turned into a SQL predicate.

Codes in the data are canonical (upper case, no dot, at least three characters: the hospitalizations
contract's pattern), so "starts with a prefix between first and last" is a plain string range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from epiatlas.outcomes.errors import CaseDefinitionError

_CODE = re.compile(r"[A-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?")


@dataclass(frozen=True)
class CodeRange:
    """Codes whose leading characters lie between `first` and `last` (a single code has first == last)."""

    first: str
    last: str

    def sql(self, column: str) -> str:
        """SQL boolean on canonical codes: first <= code < the prefix just after `last` (plain comparisons are fast)."""
        after_last = self.last[:-1] + chr(ord(self.last[-1]) + 1)
        return f"({column} >= '{self.first}' AND {column} < '{after_last}')"


def normalise_code(code: str) -> str:
    """Canonical form of one code (upper case, no dot), or CaseDefinitionError if it is not ICD-10 shaped."""
    canonical = code.strip().upper().replace(".", "", 1)
    if not _CODE.fullmatch(canonical):
        raise CaseDefinitionError(
            f"outcomes.case_icd10: {code!r} is not an ICD-10 code (expected a letter, two digits and "
            "up to five more characters, e.g. E11, E11.9, E119)"
        )
    return canonical


def parse_case_definition(items: list[str]) -> list[CodeRange]:
    """Parse codes and `first-last` ranges; a range includes every code starting with first..last."""
    if not items:
        raise CaseDefinitionError("outcomes.case_icd10: needs at least one code or range")
    ranges = []
    for item in items:
        parts = item.split("-")
        if len(parts) > 2:
            raise CaseDefinitionError(f"outcomes.case_icd10: {item!r} has more than one '-' (expected e.g. E10-E14)")
        first, last = (normalise_code(p) for p in (parts[0], parts[-1]))
        if first > last[: len(first)]:
            raise CaseDefinitionError(f"outcomes.case_icd10: range {item!r} ends before it starts")
        ranges.append(CodeRange(first, last))
    return ranges


def case_predicate_sql(items: list[str], column: str = "icd10") -> str:
    """SQL boolean that is true for a record whose `column` code meets the case definition."""
    return "(" + " OR ".join(r.sql(column) for r in parse_case_definition(items)) + ")"
