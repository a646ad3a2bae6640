"""SQL sums that are deterministic and accurate relative to their terms: power-of-two scaling, then fixed point.

A DOUBLE sum in a parallel GROUP BY depends on the order threads add terms in, so its last bits vary from run
to run; a DECIMAL sum is order-free but keeps a fixed number of decimals, so small terms lose their
significant digits. Here each term is multiplied by its group's unit, a power of two chosen so the group's
largest |term| becomes 2^99 to 2^100 (exact in binary), rounded to a 128-bit integer and summed (integer
arithmetic: exact, so the same in any order and on any number of threads), then divided by the unit. Every
term keeps full double precision down to 2^-48 of the group's largest term and an absolute error below
2^-100 of it beneath that; the exact integer sum is rounded once or twice to DOUBLE, so a sum that is a
double (such as 20 + 40) comes back exactly. A group holds at most 2^27 terms (more overflows loudly).

Usage: compute `group_unit_sql(term, keys)` as a column in a subquery, then aggregate with
`exact_sum_sql(term, unit_column)` grouped by the same keys (or finer ones). Where a bound on |term| for the
group is known more cheaply (a pollutant's largest value, say), `unit_sql(bound)` gives the unit without a
window, and precision is relative to that bound; `fixed_point_sql` lets a query sum the integers itself and
divide by the unit later.
"""

from __future__ import annotations

FRACTION_BITS = 100  # of the 127 bits of a HUGEINT: 27 bits of headroom for the number of terms


def unit_sql(largest: str) -> str:
    """SQL expression: 2^(FRACTION_BITS - k), 2^k the power of two at or above `largest` (k = 0 for 0)."""
    return f"pow(2.0, {FRACTION_BITS} - ceil(log2(coalesce(nullif({largest}, 0), 1))))"


def group_unit_sql(term: str, partition: str) -> str:
    """Window expression: the unit for max |term| over `partition`."""
    return unit_sql(f"max(abs({term})) OVER (PARTITION BY {partition})")


def fixed_point_sql(term: str, unit: str) -> str:
    """Row expression: `term` as a HUGEINT count of 1 / `unit`; sums of these are exact."""
    return f"(({term}) * {unit})::HUGEINT"


def exact_sum_sql(term: str, unit: str) -> str:
    """Aggregate expression: the DOUBLE sum of `term` in fixed point, `unit` (constant in the group) per one."""
    return f"(sum({fixed_point_sql(term, unit)})::DOUBLE / any_value({unit}))"
