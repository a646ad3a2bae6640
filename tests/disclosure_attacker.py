"""A differencing attacker who holds only the published tables and the public census.

Per period it (a) solves the age x sex reference rates from the visible rows' expected counts and the census,
rebuilds every row's expected count and so the period's total cases (indirect standardisation: expected sums
to observed), (b) reads cases off any derived column left on a hidden row (SHR x expected, crude rate x
population), (c) adds every published parent margin, then asks `scipy.optimize.linprog` (HiGHS) for the min
and max of each hidden cell under the label bounds. Written independently of `epiatlas.disclosure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linprog

PER_100K = 100_000.0


def _strata(census: pd.DataFrame, period: int, regions: list[str]) -> np.ndarray:
    """Population matrix region x (age_group, sex) of one year."""
    year = census[census["year"] == period]
    matrix = year.pivot_table(index="region_id", columns=["age_group", "sex"], values="population", aggfunc="sum")
    return matrix.reindex(regions).fillna(0.0).to_numpy(dtype=float)


def hidden_total(published: pd.DataFrame, census: pd.DataFrame, period: int) -> float | None:
    """(a) Hidden cases of the period from rebuilt expected counts; None when the census does not determine it."""
    rows = published[published["period"] == period].sort_values("region_id")
    strata = _strata(census, period, rows["region_id"].astype(str).tolist())
    known = rows["expected_cases"].notna().to_numpy()
    if not known.any():
        return None
    expected = rows["expected_cases"].to_numpy(dtype=float, na_value=np.nan)[known]
    rates = np.linalg.lstsq(strata[known], expected, rcond=None)[0]
    all_regions = strata.sum(axis=0)
    # The total is determined when the all-region population vector lies in the visible rows' row space.
    weights = np.linalg.lstsq(strata[known].T, all_regions, rcond=None)[0]
    if not np.allclose(strata[known].T @ weights, all_regions, rtol=1e-9, atol=1e-6):
        return None
    visible_cases = rows["cases"].to_numpy(dtype=float, na_value=np.nan)
    return float(all_regions @ rates) - float(np.nansum(visible_cases))


def _label_bounds(label: str, population: float, threshold: int) -> tuple[float, float | None]:
    upper = None if np.isnan(population) else population
    if label == "primary":
        return 1.0, min(threshold - 1.0, population) if upper is not None else threshold - 1.0
    return (threshold if label == "secondary" else 0.0), upper


def attack(
    published: pd.DataFrame, margins: pd.DataFrame | None, census: pd.DataFrame, regions: pd.DataFrame
) -> pd.DataFrame:
    """LP bounds (lower, upper) on every hidden cell, with the bounds its label alone gives (known_*)."""
    threshold = int(published["suppression_threshold"].iloc[0])
    parent_of = dict(zip(regions["region_id"].astype(str), regions["parent_id"], strict=True))
    out = []
    for period, rows in published.groupby("period", sort=True):
        rows = rows.sort_values("region_id").reset_index(drop=True)
        hidden = rows[rows["suppression"].notna()].reset_index(drop=True)
        if hidden.empty:
            continue
        ids = hidden["region_id"].astype(str).tolist()
        equalities: list[np.ndarray] = []
        totals: list[float] = []
        total = hidden_total(rows, census, int(period))
        if total is not None:
            equalities.append(np.ones(len(ids)))
            totals.append(float(round(total)))  # counts are whole numbers
        for i, row in hidden.iterrows():  # (b) derived columns left on hidden rows
            for value in (_shr_cases(row), _rate_cases(row)):
                if value is not None:
                    unit = np.zeros(len(ids))
                    unit[i] = 1.0
                    equalities.append(unit)
                    totals.append(value)
        if margins is not None:  # (c) published margins
            for m in margins[(margins["period"] == period) & margins["published"].astype(bool)].itertuples():
                inside = [m.level == "national" or parent_of.get(r) == m.parent_id for r in rows["region_id"]]
                inside = np.array(inside)
                visible = rows["suppression"].isna().to_numpy()
                members = set(rows.loc[inside & ~visible, "region_id"].astype(str))
                equalities.append(np.array([1.0 if r in members else 0.0 for r in ids]))
                totals.append(float(m.cases) - float(rows.loc[inside & visible, "cases"].astype(float).sum()))
        populations = hidden["population"].to_numpy(dtype=float, na_value=np.nan)
        labels = hidden["suppression"]
        bounds = [_label_bounds(lab, pop, threshold) for lab, pop in zip(labels, populations, strict=True)]
        for i, region in enumerate(ids):
            ends = []
            for sign in (1.0, -1.0):
                c = np.zeros(len(ids))
                c[i] = sign
                a_eq = np.array(equalities) if equalities else None
                res = linprog(c, A_eq=a_eq, b_eq=totals or None, bounds=bounds, method="highs")
                assert res.status in (0, 3), f"published figures are inconsistent in period {period}: {res.message}"
                ends.append(sign * res.fun if res.status == 0 else np.inf)
            known_upper = np.inf if bounds[i][1] is None else bounds[i][1]
            out.append((region, int(period), hidden.loc[i, "suppression"], bounds[i][0], known_upper, *ends))
    columns = ["region_id", "period", "suppression", "known_lower", "known_upper", "lower", "upper"]
    return pd.DataFrame(out, columns=columns)


def _shr_cases(row: pd.Series) -> float | None:
    if pd.isna(row["shr"]) or pd.isna(row["expected_cases"]):
        return None
    return float(round(row["shr"] * row["expected_cases"]))


def _rate_cases(row: pd.Series) -> float | None:
    if pd.isna(row["crude_rate"]) or pd.isna(row["population"]):
        return None
    return float(round(row["crude_rate"] * row["population"] / PER_100K))


def recovered(bounds: pd.DataFrame) -> pd.DataFrame:
    """Hidden cells pinned to one value, or primaries narrowed inside what their label says."""
    pinned = (bounds["upper"] - bounds["lower"] < 1e-6) & (bounds["known_upper"] > bounds["known_lower"])
    primary = bounds["suppression"] == "primary"
    narrowed = primary & (
        (bounds["lower"] > bounds["known_lower"] + 1e-6) | (bounds["upper"] < bounds["known_upper"] - 1e-6)
    )
    return bounds[pinned | narrowed]
