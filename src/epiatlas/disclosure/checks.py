"""Checks on the published outcomes and their margins, as `TableCheck` verdicts for the pipeline."""

from __future__ import annotations

import pandas as pd

from epiatlas.disclosure.audit import disclosure_failures
from epiatlas.disclosure.suppression import NATIONAL
from epiatlas.quality import TableCheck, region_period_checks

PUBLISHED_CHECKS = {
    "every_region_present": "every region has a row in every materialized period",
    "population_positive": "population > 0 where known",
}
MARGIN_CHECKS = {
    "one_national_margin_per_period": "every materialized period has exactly one national total",
    "survives_differencing": "the bounds differencing gives (the LP optimum) from the stored published_outcomes "
    "and these margins pin no hidden cell and leave every primary cell at [1, threshold-1]",
}


def published_outcome_checks(frame: pd.DataFrame, region_ids: set[str], periods: list[int]) -> list[TableCheck]:
    """Every region present per period and population positive (the region_period_outcomes checks that apply)."""
    return [c for c in region_period_checks(frame, region_ids, periods) if c.name in PUBLISHED_CHECKS]


def margin_checks(margins: pd.DataFrame, bounds: pd.DataFrame, periods: list[int]) -> list[TableCheck]:
    """One national margin per period; the differencing audit `bounds` (audit.differencing_bounds) finds nothing."""
    national = margins[margins["level"] == NATIONAL]["period"].value_counts()
    wrong = sorted(p for p in periods if national.get(p, 0) != 1)
    failures = disclosure_failures(bounds)
    examples = failures.head(5).to_dict("records")
    return [
        TableCheck(
            "one_national_margin_per_period",
            not wrong,
            len(wrong),
            f"periods without exactly one national total: {wrong}" if wrong else "one national total per period",
        ),
        TableCheck(
            "survives_differencing",
            failures.empty,
            len(failures),
            f"{len(bounds)} hidden cells audited; {len(failures)} pinned or narrowed, e.g. {examples}"
            if len(failures)
            else f"{len(bounds)} hidden cells audited; none pinned, every primary keeps [1, threshold-1]",
        ),
    ]
