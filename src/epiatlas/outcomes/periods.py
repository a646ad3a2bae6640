"""Periods are calendar years; helpers shared by outcomes and exposure to select one or more of them."""

from __future__ import annotations

import calendar
from collections.abc import Sequence


def checked_periods(periods: Sequence[int]) -> list[int]:
    """Sorted distinct integer years; at least one is required."""
    if not periods:
        raise ValueError("periods: give at least one year")
    return sorted({int(p) for p in periods})


def date_in_periods_sql(column: str, periods: list[int]) -> str:
    """SQL boolean: `column` (a DATE) falls in one of the sorted years, as date ranges that scans can prune on."""
    runs: list[list[int]] = []
    for year in periods:
        if runs and year == runs[-1][1] + 1:
            runs[-1][1] = year
        else:
            runs.append([year, year])
    ranges = [f"({column} >= DATE '{a}-01-01' AND {column} < DATE '{b + 1}-01-01')" for a, b in runs]
    return "(" + " OR ".join(ranges) + ")"


def days_in_year(year: int) -> int:
    """Number of days in a calendar year."""
    return 366 if calendar.isleap(year) else 365
