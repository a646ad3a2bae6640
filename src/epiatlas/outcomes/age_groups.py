"""Census age-group labels (`0-4`, ..., `85+`): lower bounds, and a DuckDB lookup from age to group."""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from epiatlas.outcomes.errors import AgeGroupError
from epiatlas.outcomes.temp_tables import create_temp_table

_LABEL = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)|\+)\s*")
AGE_LOOKUP_TABLE = "_epiatlas_age_lookup"
MAX_LOOKUP_AGE = 150


def lower_bound(label: str) -> int:
    """Lower age bound of a label such as `45-49` or `85+`."""
    match = _LABEL.fullmatch(label)
    if not match:
        raise AgeGroupError(f"census.age_group: cannot parse {label!r} (expected e.g. '0-4' or '85+')")
    low, high = match.group(1), match.group(2)
    if high is not None and int(high) < int(low):
        raise AgeGroupError(f"census.age_group: {label!r} ends before it starts")
    return int(low)


def census_age_groups(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Distinct census age groups with their lower bounds, ordered by lower bound."""
    labels = [row[0] for row in con.execute("SELECT DISTINCT age_group FROM census").fetchall()]
    if not labels:
        raise AgeGroupError("census: no age groups (the table is empty)")
    groups = pd.DataFrame({"age_group": labels, "lower_age": [lower_bound(x) for x in labels]})
    duplicated = groups[groups["lower_age"].duplicated(keep=False)]
    if not duplicated.empty:
        raise AgeGroupError(f"census.age_group: labels {sorted(duplicated['age_group'])} share a lower bound")
    return groups.sort_values("lower_age", ignore_index=True)


def register_age_lookup(con: duckdb.DuckDBPyConnection) -> str:
    """Create a small table age -> age_group (greatest lower bound <= age) for ages 0..150; return its name."""
    groups = create_temp_table(con, "_epiatlas_age_groups", census_age_groups(con))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {AGE_LOOKUP_TABLE} AS
        SELECT a.age::INTEGER AS age, arg_max(g.age_group, g.lower_age) AS age_group
        FROM range(0, {MAX_LOOKUP_AGE + 1}) a(age)
        JOIN {groups} g ON g.lower_age <= a.age
        GROUP BY a.age
        """
    )
    return AGE_LOOKUP_TABLE
