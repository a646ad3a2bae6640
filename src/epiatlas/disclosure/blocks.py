"""Hidden cells sharing one published total: the exact range an attacker can give each, and complement choice.

A block is the set of hidden cells of one period whose sum is known (a published margin minus its visible
cells). The attacker also knows each hidden cell's bounds from its label: primary [1, t-1], secondary
[t, population], period-withheld [0, population], and every cell <= population. With one equality and box
bounds the feasible range of each cell is exact and closed-form (no LP needed); `epiatlas.disclosure.audit`
checks the same ranges with a linear programme over all published totals at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PRIMARY = "primary"
SECONDARY = "secondary"
PERIOD = "period"


@dataclass(frozen=True)
class Cell:
    """One region's cell in one period: its true count and public population (inf when unknown)."""

    region_id: str
    cases: int
    population: float


def label_bounds(cell: Cell, label: str, threshold: int) -> tuple[float, float]:
    """What the attacker knows about a hidden cell's count from its label and its population alone."""
    lower = {PRIMARY: 1, SECONDARY: threshold, PERIOD: 0}[label]
    upper = min(threshold - 1, cell.population) if label == PRIMARY else cell.population
    return float(lower), float(upper)


def feasible_ranges(total: float, bounds: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Exact [min, max] of each x_i over {sum(x) = total, lower_i <= x_i <= upper_i} (the LP optimum).

    Parameters
    ----------
    total : the known sum of the block's cells
    bounds : (lower, upper) per cell; upper may be inf

    Returns
    -------
    list of (min, max) per cell: max(l_i, T - sum of the others' uppers), min(u_i, T - sum of the others' lowers).
    """
    lower_sum = math.fsum(lo for lo, _ in bounds)
    finite_upper = math.fsum(up for _, up in bounds if math.isfinite(up))
    infinite = sum(1 for _, up in bounds if not math.isfinite(up))
    ranges = []
    for lo, up in bounds:
        others_infinite = infinite - (0 if math.isfinite(up) else 1)
        others_upper = math.inf if others_infinite else finite_upper - up
        ranges.append((max(lo, total - others_upper), min(up, total - (lower_sum - lo))))
    return ranges


def protected(cells: Sequence[Cell], labels: Sequence[str], threshold: int) -> bool:
    """True when the block's total narrows no primary below its label bounds and pins no cell.

    An empty block is protected; a single hidden cell never is (the total gives it away).
    """
    if not cells:
        return True
    if len(cells) < 2:
        return False
    bounds = [label_bounds(c, lab, threshold) for c, lab in zip(cells, labels, strict=True)]
    for (lo, up), (known_lo, known_up), label in zip(
        feasible_ranges(sum(c.cases for c in cells), bounds), bounds, labels, strict=True
    ):
        if label == PRIMARY and (lo, up) != (known_lo, known_up):
            return False
        if known_lo < known_up and not lo < up:
            return False
    return True


def complements(
    hidden: Sequence[Cell], labels: Sequence[str], candidates: Sequence[Cell], threshold: int
) -> list[Cell] | None:
    """Visible cells to hide as secondary so that the block is protected; None when no choice suffices.

    Candidates are taken smallest first (ties by region_id): at each step the smallest one that completes
    the protection, else the smallest above the threshold (it adds slack downwards), else the smallest.
    """
    pool = sorted(candidates, key=lambda c: (c.cases, c.region_id))
    chosen: list[Cell] = []

    def is_done(extra: list[Cell]) -> bool:
        block = [*hidden, *chosen, *extra]
        return protected(block, [*labels, *([SECONDARY] * (len(chosen) + len(extra)))], threshold)

    while not is_done([]):
        if not pool:
            return None
        pick = next((c for c in pool if is_done([c])), None)
        pick = pick or next((c for c in pool if c.cases > threshold), pool[0])
        chosen.append(pick)
        pool.remove(pick)
    return chosen
