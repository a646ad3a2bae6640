"""Differencing audit of published outcomes: the linear-programming bounds an attacker gets on hidden cells.

From the published table and margins alone, each period gives the equalities "hidden cells of a published
margin sum to its cases minus its visible cells" (the national margin and every published parent margin),
and each hidden cell's label gives its bounds (primary [1, t-1], secondary [t, population], period
[0, population]). The min and max of every hidden cell over that polytope, found with HiGHS, are what
differencing can tell; the constraint matrix is an interval (laminar) matrix, so the LP bounds are integral
and equal the integer ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from epiatlas.disclosure.blocks import PRIMARY, Cell, label_bounds
from epiatlas.disclosure.suppression import NATIONAL

AUDIT_COLUMNS = ("region_id", "period", "suppression", "known_lower", "known_upper", "lower", "upper")


def differencing_bounds(published: pd.DataFrame, margins: pd.DataFrame, regions: pd.DataFrame) -> pd.DataFrame:
    """Per hidden cell: the bounds its label gives and the LP bounds after every published total.

    Parameters
    ----------
    published : `published_outcomes` rows (suppression, cases, population, suppression_threshold)
    margins : `published_outcome_margins` rows
    regions : region_id and parent_id, as in the public `regions` table

    Returns
    -------
    DataFrame with AUDIT_COLUMNS, one row per hidden cell.

    References
    ----------
    Hundepool et al. (2012), Statistical Disclosure Control, sec. 4.2 (audit of a suppression pattern by LP).
    """
    parent_of = dict(zip(regions["region_id"].astype(str), regions["parent_id"], strict=True))
    threshold = int(published["suppression_threshold"].iloc[0]) if len(published) else 1
    frames = [
        _period_bounds(rows, margins[margins["period"] == period], parent_of, threshold)
        for period, rows in published.groupby("period", sort=True)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(AUDIT_COLUMNS))


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
    rows: pd.DataFrame, margins: pd.DataFrame, parent_of: dict[str, object], threshold: int
) -> pd.DataFrame:
    """LP min and max of each hidden cell of one period under its published margins."""
    from scipy.optimize import linprog

    rows = rows.reset_index(drop=True)
    hidden = rows[rows["suppression"].notna()].reset_index(drop=True)
    regions = rows["region_id"].astype(str)
    parents = regions.map(parent_of)
    visible = rows["suppression"].isna()
    equalities, totals = [], []
    for margin in margins[margins["published"].fillna(False).astype(bool)].itertuples():
        inside = pd.Series(True, index=rows.index) if margin.level == NATIONAL else parents == margin.parent_id
        members = set(regions[inside & ~visible])
        equalities.append([1.0 if r in members else 0.0 for r in hidden["region_id"].astype(str)])
        totals.append(float(margin.cases) - float(rows.loc[inside & visible, "cases"].sum()))
    known = [
        label_bounds(Cell(str(r), 0, np.inf if pd.isna(p) else float(p)), str(lab), threshold)
        for r, p, lab in zip(hidden["region_id"], hidden["population"], hidden["suppression"], strict=True)
    ]
    lower, upper = [], []
    for i in range(len(hidden)):
        objective = np.zeros(len(hidden))
        objective[i] = 1.0
        ends = []
        for sign in (1.0, -1.0):
            result = linprog(
                sign * objective,
                A_eq=np.array(equalities) if equalities else None,
                b_eq=np.array(totals) if totals else None,
                bounds=[(lo, None if np.isinf(up) else up) for lo, up in known],
                method="highs",
            )
            ends.append(sign * result.fun if result.status == 0 else (np.inf if result.status == 3 else np.nan))
        lower.append(ends[0])
        upper.append(ends[1])
    return pd.DataFrame(
        {
            "region_id": hidden["region_id"].astype(str),
            "period": hidden["period"].astype(int),
            "suppression": hidden["suppression"].astype(str),
            "known_lower": [lo for lo, _ in known],
            "known_upper": [up for _, up in known],
            "lower": lower,
            "upper": upper,
        },
        columns=list(AUDIT_COLUMNS),
    )
