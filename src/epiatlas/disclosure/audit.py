"""Differencing audit of published outcomes: the bounds an attacker gets on hidden cells from what was written.

From the published table, the margins and the public region hierarchy alone, each period gives the equalities
"hidden cells of a published margin sum to its cases minus its visible cells" (the national margin and every
published parent margin), and each hidden cell's label gives its bounds (primary [1, t-1], secondary
[t, population], period [0, population]). Parents are disjoint, so subtracting the published parent rows
from the national row leaves an equivalent system of disjoint rows (one per published parent, one for the
rest); over one sum with box bounds the linear-programming optimum of each cell has a closed form
(`blocks.feasible_ranges`, checked against HiGHS in the tests), and the constraint matrix is an interval
matrix, so these bounds are also the integer ones.
"""

from __future__ import annotations

import math

import pandas as pd

from epiatlas.disclosure.blocks import PRIMARY, Cell, feasible_ranges, label_bounds
from epiatlas.disclosure.suppression import NATIONAL

AUDIT_COLUMNS = ("region_id", "period", "suppression", "known_lower", "known_upper", "lower", "upper")
REST = "__rest__"  # the row of hidden cells outside every published parent


def differencing_bounds(published: pd.DataFrame, margins: pd.DataFrame, regions: pd.DataFrame) -> pd.DataFrame:
    """Per hidden cell: the bounds its label gives and the exact bounds after every published total.

    Parameters
    ----------
    published : `published_outcomes` rows (region_id, period, cases, population, suppression, suppression_threshold)
    margins : `published_outcome_margins` rows
    regions : region_id and parent_id, as in the public `regions` table

    Returns
    -------
    DataFrame with AUDIT_COLUMNS, one row per hidden cell, by period and region; lower/upper are NaN where
    the published totals contradict the label bounds (no feasible value).

    References
    ----------
    Hundepool et al. (2012), Statistical Disclosure Control, Wiley, sec. 4.2 (auditing a suppression pattern:
    the interval an intruder can derive for each suppressed cell).
    """
    parent_of = dict(zip(regions["region_id"].astype(str), regions["parent_id"], strict=True))
    threshold = int(published["suppression_threshold"].iloc[0]) if len(published) else 1
    rows = []
    for period, cells in published.groupby("period", sort=True):
        rows += _period_bounds(cells, margins[margins["period"] == period], parent_of, threshold)
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS)).sort_values(["period", "region_id"], ignore_index=True)


def disclosure_failures(bounds: pd.DataFrame, tolerance: float = 1e-6) -> pd.DataFrame:
    """Hidden cells that differencing pins to one value, primaries narrowed inside [1, t-1], or infeasible totals."""
    pinned = (bounds["upper"] - bounds["lower"] < tolerance) & (bounds["known_upper"] > bounds["known_lower"])
    narrowed = (bounds["suppression"] == PRIMARY) & (
        ((bounds["lower"] - bounds["known_lower"]).abs() > tolerance)
        | ((bounds["upper"] - bounds["known_upper"]).abs() > tolerance)
    )
    infeasible = bounds["lower"].isna() | bounds["upper"].isna()
    return bounds[pinned | narrowed | infeasible]


def _period_bounds(
    cells: pd.DataFrame, margins: pd.DataFrame, parent_of: dict[str, object], threshold: int
) -> list[tuple]:
    """Bounds of each hidden cell of one period: one disjoint sum per published parent, one for the rest."""
    released = margins[margins["published"].fillna(False).astype(bool)]
    totals = {(REST if m.level == NATIONAL else m.parent_id): int(m.cases) for m in released.itertuples()}
    frame = cells.assign(
        region_id=cells["region_id"].astype(str),
        row=[p if p in totals and p != REST else REST for p in cells["region_id"].astype(str).map(parent_of)],
    )
    rest_total = totals.get(REST)
    if rest_total is not None:  # national row minus the published parent rows
        totals[REST] = rest_total - sum(v for k, v in totals.items() if k != REST)
    out = []
    for row, members in frame.groupby("row", sort=True):
        hidden = members[members["suppression"].notna()]
        if hidden.empty:
            continue
        known = [
            label_bounds(Cell(r, 0, math.inf if pd.isna(p) else float(p)), str(lab), threshold)
            for r, p, lab in zip(hidden["region_id"], hidden["population"], hidden["suppression"], strict=True)
        ]
        if row in totals:
            hidden_sum = totals[row] - int(members.loc[members["suppression"].isna(), "cases"].sum())
            ranges = [(lo, up) if lo <= up else (math.nan, math.nan) for lo, up in feasible_ranges(hidden_sum, known)]
        else:
            ranges = known
        out += [
            (r, int(per), str(lab), k_lo, k_up, lo, up)
            for r, per, lab, (k_lo, k_up), (lo, up) in zip(
                hidden["region_id"], hidden["period"], hidden["suppression"], known, ranges, strict=True
            )
        ]
    return out
