"""Primary and complementary cell suppression of `region_period_outcomes`, and the margins that stay safe.

The rule, per period (periods are independent: no total across periods is published):

1. Primary: a cell with 0 < cases < t (t = suppression_threshold) is hidden; true zeros stay visible.
2. The per-period national total is treated as public (under internal indirect standardisation expected
   sums to observed, and expected counts can be rebuilt from visible rows and the census), and each
   parent-region x period total is published when safe. The published totals split a period's hidden cells
   into disjoint blocks: one per published parent, plus a residual block (cells of unpublished parents and
   of regions without a parent) whose sum the national total gives away.
3. Every block must hold no hidden cell or at least two, with each primary's feasible range still its full
   [1, min(t-1, population)] and no hidden cell pinned. A block short of that gets complements
   (secondary suppression): visible cells with cases >= t from the same parent (residual: from the regions
   outside published parents), smallest first, ties by region_id (`blocks.complements`).
4. A parent whose block cannot be completed from its own cells is not published; its cells join the residual
   block. When the residual block cannot be completed either, published parents are withdrawn one by one
   (the one whose visible cells add the most slack first, ties by parent_id). When nothing is left to
   withdraw, every row of the period is hidden with the label 'period' (zeros and primaries alike, so the
   labels reveal nothing) and no parent margin of that period is published.

Deaths and severe_cases are blanked on hidden rows and wherever 0 < value < t; no margins of them are
published, so they cannot be differenced. Every derived column (expected, SHR, rates, their intervals) is
blanked on hidden rows. Population (the public census) stays visible.

References
----------
Hundepool, A. et al. (2012). Statistical Disclosure Control. Wiley, ch. 4-5 (primary and secondary cell
suppression, the interval/"protection level" criterion and audit by linear programming).
Cox, L. H. (1980). Suppression methodology and statistical disclosure control. JASA 75(370), 377-385.
Fischetti, M. & Salazar-Gonzalez, J. J. (1999). Models and algorithms for the 2-dimensional cell suppression
problem in statistical disclosure control. Mathematical Programming 84, 283-312.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from epiatlas.disclosure.blocks import PERIOD, PRIMARY, SECONDARY, Cell, complements, protected
from epiatlas.disclosure.errors import DisclosureInputError, UnprotectableError
from epiatlas.outcomes import REGION_PERIOD_COLUMNS

PUBLISHED_COLUMNS = (*REGION_PERIOD_COLUMNS, "suppression")
DERIVED_COLUMNS = (
    "expected_cases", "shr", "shr_lower", "shr_upper", "crude_rate", "crude_rate_lower", "crude_rate_upper",
    "std_rate", "std_rate_lower", "std_rate_upper",
)  # fmt: skip
SMALL_VALUE_COLUMNS = ("deaths", "severe_cases")
MARGIN_COLUMNS = (
    "level", "parent_id", "period", "regions", "hidden_cells", "primary_cells", "secondary_cells",
    "published", "cases", "population", "expected_cases",
)  # fmt: skip
NATIONAL = "national"
# Nullable dtypes, so blanked counts stay whole numbers (NumPy int64 would turn into float on masking).
_NULLABLE_TYPES = {
    "region_id": "string", "period": "Int32", "cases": "Int64", "deaths": "Int64", "severe_cases": "Int64",
    "population": "Int64", **dict.fromkeys(DERIVED_COLUMNS, "Float64"), "suppressed": "boolean",
    "suppression_threshold": "Int32",
}  # fmt: skip
PARENT = "parent"


@dataclass(frozen=True)
class DisclosureCounts:
    """How many cells were hidden, by reason, and how many parent margins were published or withheld."""

    cells: int
    primary: int
    secondary: int
    period_withheld: int
    parent_margins_published: int
    parent_margins_withheld: int

    def as_metadata(self) -> dict[str, str]:
        """The counts as strings, ready for asset metadata."""
        return {f"suppression_{k}": str(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class DisclosureResult:
    """The published outcomes table, its safe margins, and counts for metadata."""

    table: pd.DataFrame
    margins: pd.DataFrame
    counts: DisclosureCounts
    metadata: dict[str, str]


@dataclass
class _Period:
    """Suppression state of one period: labels of hidden cells and which parents publish a margin."""

    cells: dict[str, Cell]
    parent_of: dict[str, str | None]
    threshold: int
    labels: dict[str, str] = field(default_factory=dict)
    published: dict[str, bool] = field(default_factory=dict)

    def members(self, parent: str) -> list[str]:
        return sorted(r for r, p in self.parent_of.items() if p == parent)

    def residual(self) -> list[str]:
        """Regions whose hidden cells are summed only by the national total."""
        return sorted(r for r, p in self.parent_of.items() if p is None or not self.published[p])

    def complete(self, regions: Iterable[str]) -> bool:
        """Hide complements among `regions` so their hidden block is protected; False when impossible."""
        regions = list(regions)
        hidden = [r for r in regions if r in self.labels]
        chosen = complements(
            [self.cells[r] for r in hidden], [self.labels[r] for r in hidden], self.eligible(regions), self.threshold
        )
        if chosen is None:
            return False
        self.labels.update((c.region_id, SECONDARY) for c in chosen)
        return True

    def eligible(self, regions: Iterable[str]) -> list[Cell]:
        """Visible cells with cases >= threshold: the possible complements."""
        return [self.cells[r] for r in regions if r not in self.labels and self.cells[r].cases >= self.threshold]

    def slack(self, parent: str) -> int:
        """Downward slack the parent's possible complements could add (sum of cases - threshold)."""
        return sum(c.cases - self.threshold for c in self.eligible(self.members(parent)))


def protect_outcomes(outcomes: pd.DataFrame, regions: pd.DataFrame) -> DisclosureResult:
    """Suppress `region_period_outcomes` so no hidden cell can be recovered or narrowed by differencing.

    Parameters
    ----------
    outcomes : the private `region_period_outcomes` rows (contract columns), any number of periods
    regions : `regions` with region_id and parent_id (NULL parent: the region is summed only nationally)

    Returns
    -------
    DisclosureResult with `table` (contract columns of `published_outcomes`: counts, expected and derived
    columns blanked on hidden rows, `suppression` NULL / 'primary' / 'secondary' / 'period'), `margins` (one
    national row and one row per parent per period; cases and expected only where `published`) and counts.

    References
    ----------
    Hundepool et al. (2012), Statistical Disclosure Control, ch. 4-5; Cox (1980), JASA 75, 377-385.
    """
    threshold = _threshold(outcomes)
    parent_of = _parents(outcomes, regions)
    labels: dict[tuple[str, int], str] = {}
    published: dict[tuple[str, int], bool] = {}
    for period, rows in outcomes.groupby("period", sort=True):
        state = _protect_period(int(period), _cells(rows), parent_of, threshold)
        labels.update(((r, int(period)), lab) for r, lab in state.labels.items())
        published.update(((p, int(period)), ok) for p, ok in state.published.items())
    table = _published_table(outcomes, labels, threshold)
    margins = _margins(outcomes, parent_of, labels, published)
    counts = _counts(table, margins)
    metadata = {
        "disclosure_rule": f"primary: 0 < cases < {threshold}; complementary suppression so that every published "
        "total (national and parent x period) leaves each primary in [1, threshold-1] and pins no hidden cell",
        **counts.as_metadata(),
    }
    return DisclosureResult(table, margins, counts, metadata)


def _threshold(outcomes: pd.DataFrame) -> int:
    """The single suppression threshold the private table was built with."""
    missing = [c for c in REGION_PERIOD_COLUMNS if c not in outcomes.columns]
    if missing:
        raise DisclosureInputError(
            f"region_period_outcomes: missing column(s) {missing}; pass the table as its contract defines it"
        )
    values = set(outcomes["suppression_threshold"].dropna().astype(int))
    if len(values) > 1:
        raise DisclosureInputError(
            f"region_period_outcomes.suppression_threshold: several values {sorted(values)}; rebuild every period "
            "with one outcomes.suppression_threshold"
        )
    if outcomes["cases"].isna().any():
        raise DisclosureInputError("region_period_outcomes.cases: NULL counts; the private table must be complete")
    return values.pop() if values else 1


def _parents(outcomes: pd.DataFrame, regions: pd.DataFrame) -> dict[str, str | None]:
    """region_id -> parent_id (None when absent) for every region of the outcomes."""
    if not {"region_id", "parent_id"} <= set(regions.columns):
        raise DisclosureInputError("regions: needs columns region_id and parent_id (parent_id may be NULL)")
    pairs = zip(regions["region_id"], regions["parent_id"], strict=True)
    parent_of = {str(r): (None if pd.isna(p) else str(p)) for r, p in pairs}
    unknown = sorted(set(outcomes["region_id"].astype(str)) - set(parent_of))
    if unknown:
        raise DisclosureInputError(
            f"region_period_outcomes.region_id: {len(unknown)} region(s) not in regions, e.g. {unknown[:5]}"
        )
    return parent_of


def _cells(rows: pd.DataFrame) -> dict[str, Cell]:
    """The period's cells by region (population inf when unknown: the attacker has no upper bound then)."""
    return {
        str(r): Cell(str(r), int(c), math.inf if pd.isna(p) else float(p))
        for r, c, p in zip(rows["region_id"], rows["cases"], rows["population"], strict=True)
    }


def _protect_period(
    period: int, cells: dict[str, Cell], parent_of: dict[str, str | None], threshold: int
) -> _Period:
    """Primary labels, complements per parent, then the residual block; withhold the period as a last resort."""
    state = _Period(cells, {r: parent_of[r] for r in cells}, threshold)
    state.labels = {r: PRIMARY for r, c in cells.items() if 0 < c.cases < threshold}
    for parent in sorted({p for p in state.parent_of.values() if p is not None}):
        state.published[parent] = state.complete(state.members(parent))
    while not state.complete(state.residual()):
        candidates = [p for p, ok in state.published.items() if ok]
        if not candidates:
            _withhold(state, period)
            break
        state.published[min(candidates, key=lambda p: (-state.slack(p), p))] = False
    return state


def _withhold(state: _Period, period: int) -> None:
    """Hide every row of the period under one label and publish no parent margin of it."""
    state.labels = dict.fromkeys(state.cells, PERIOD)
    state.published = dict.fromkeys(state.published, False)
    cells = [state.cells[r] for r in sorted(state.cells)]
    if not protected(cells, [PERIOD] * len(cells), state.threshold):
        raise UnprotectableError(
            f"region_period_outcomes, period {period}: {len(cells)} region(s) with cells below the threshold "
            f"{state.threshold} cannot be protected even with every row hidden (its national total gives the "
            "cells away); use more regions or a coarser period"
        )


def _published_table(outcomes: pd.DataFrame, labels: dict[tuple[str, int], str], threshold: int) -> pd.DataFrame:
    """The private rows with hidden cells blanked, small deaths / severe counts blanked, labels added."""
    table = outcomes[list(REGION_PERIOD_COLUMNS)].astype(_NULLABLE_TYPES)
    keys = zip(table["region_id"].astype(str), table["period"].astype(int), strict=True)
    table["suppression"] = pd.array([labels.get(k) for k in keys], dtype="string")
    hidden = table["suppression"].notna().to_numpy()
    for column in ("cases", *SMALL_VALUE_COLUMNS, *DERIVED_COLUMNS):
        table[column] = table[column].mask(hidden)
    for column in SMALL_VALUE_COLUMNS:
        small = ((table[column] > 0) & (table[column] < threshold)).fillna(False).to_numpy(dtype=bool)
        table[column] = table[column].mask(small)
    table["suppressed"] = pd.array(hidden, dtype="boolean")
    return table.reset_index(drop=True)[list(PUBLISHED_COLUMNS)]


def _margins(
    outcomes: pd.DataFrame,
    parent_of: dict[str, str | None],
    labels: dict[tuple[str, int], str],
    published: dict[tuple[str, int], bool],
) -> pd.DataFrame:
    """National and parent x period totals; a parent's cases and expected only where its margin is safe."""
    frame = outcomes[["region_id", "period", "cases", "population", "expected_cases"]].copy()
    frame["region_id"] = frame["region_id"].astype(str)
    frame["period"] = frame["period"].astype(int)
    frame["label"] = [labels.get(k) for k in zip(frame["region_id"], frame["period"], strict=True)]
    frame["parent_id"] = frame["region_id"].map(parent_of)
    rows = []
    for period, group in frame.groupby("period", sort=True):
        rows.append(_margin_row(NATIONAL, None, period, group, published=True))
        for parent, members in group.dropna(subset=["parent_id"]).groupby("parent_id", sort=True):
            rows.append(_margin_row(PARENT, parent, period, members, published[(parent, period)]))
    margins = pd.DataFrame(rows, columns=list(MARGIN_COLUMNS))
    types = {
        "level": "string", "parent_id": "string", "period": "Int32", "regions": "Int64", "hidden_cells": "Int64",
        "primary_cells": "Int64", "secondary_cells": "Int64", "published": "boolean", "cases": "Int64",
        "population": "Int64", "expected_cases": "Float64",
    }  # fmt: skip
    return margins.astype(types)


def _margin_row(level: str, parent: str | None, period: int, rows: pd.DataFrame, published: bool) -> list:
    """One margin: counts of hidden cells by label, and the totals (cases and expected only when published)."""
    labels = rows["label"]
    population = None if rows["population"].isna().any() else int(rows["population"].sum())
    expected = None if rows["expected_cases"].isna().any() else math.fsum(rows["expected_cases"].astype(float))
    return [
        level, parent, int(period), len(rows), int(labels.notna().sum()), int((labels == PRIMARY).sum()),
        int((labels == SECONDARY).sum()), published, int(rows["cases"].sum()) if published else None, population,
        expected if published else None,
    ]  # fmt: skip


def _counts(table: pd.DataFrame, margins: pd.DataFrame) -> DisclosureCounts:
    """Cells by suppression label; parent margins published and withheld."""
    labels = table["suppression"].value_counts().to_dict()
    parents = margins[margins["level"] == PARENT]["published"]
    return DisclosureCounts(
        cells=len(table),
        primary=int(labels.get(PRIMARY, 0)),
        secondary=int(labels.get(SECONDARY, 0)),
        period_withheld=int(labels.get(PERIOD, 0)),
        parent_margins_published=int(parents.sum()),
        parent_margins_withheld=int((~parents).sum()),
    )
