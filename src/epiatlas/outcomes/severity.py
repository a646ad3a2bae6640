"""Severity criteria (in-hospital death, long stay, ICU) as SQL, with the criteria actually available."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from epiatlas.config import SeverityConfig


@dataclass(frozen=True)
class SeverityDefinition:
    """The SQL predicate for a severe case and a plain-language account of the criteria used."""

    predicate_sql: str | None
    criteria: tuple[str, ...]
    unavailable: tuple[str, ...]

    def describe(self) -> str:
        """One sentence for metadata: which criteria define a severe case and which could not be used."""
        used = " or ".join(self.criteria) if self.criteria else "no criterion (severe_cases is NULL)"
        missing = f"; unavailable in the source: {', '.join(self.unavailable)}" if self.unavailable else ""
        return f"severe = {used}{missing}"


def icu_available(con: duckdb.DuckDBPyConnection, table: str = "hospitalizations") -> bool:
    """Whether `table` has an `icu` column with at least one non-NULL value."""
    columns = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    if "icu" not in columns:
        return False
    return con.execute(f"SELECT count(*) > 0 FROM (SELECT 1 FROM {table} WHERE icu IS NOT NULL LIMIT 1)").fetchone()[0]


def severity_definition(con: duckdb.DuckDBPyConnection, cfg: SeverityConfig) -> SeverityDefinition:
    """Build the severe-case predicate from the enabled criteria the record table can support."""
    parts: dict[str, str] = {}
    unavailable: list[str] = []
    if cfg.death:
        parts["in-hospital death"] = "discharge_status = 'death'"
    if cfg.los_days_gt is not None:
        los = "date_diff('day', admission_date, discharge_date)"
        parts[f"length of stay > {cfg.los_days_gt} days"] = f"{los} > {cfg.los_days_gt}"
    if cfg.icu:
        if icu_available(con):
            parts["ICU stay"] = "icu IS TRUE"
        else:
            unavailable.append("ICU stay (icu column empty)")
    predicate = "(" + " OR ".join(parts.values()) + ")" if parts else None
    return SeverityDefinition(predicate, tuple(parts), tuple(unavailable))
