"""Data-quality verdicts: ingest row accounting and the checks on computed region tables."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


REGIONS_CHECK = "no_region_lost"


def reject_share(rows_quarantined: int, rows_read: int) -> float:
    """Share of the rows read that went to quarantine (0 for an empty read)."""
    return rows_quarantined / rows_read if rows_read else 0.0


@dataclass(frozen=True)
class Reconciliation:
    """Rows read versus rows stored, and whether the reject share is acceptable."""

    source: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    max_reject_share: float

    @property
    def reject_share(self) -> float:
        return reject_share(self.rows_quarantined, self.rows_read)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_quarantined

    @property
    def passed(self) -> bool:
        return self.balanced and self.reject_share <= self.max_reject_share

    @property
    def message(self) -> str:
        if not self.balanced:
            lost = self.rows_read - self.rows_accepted - self.rows_quarantined
            return (
                f"{self.source}: {self.rows_read} rows read but {self.rows_accepted} accepted + "
                f"{self.rows_quarantined} quarantined ({lost:+d} unaccounted)"
            )
        verdict = "within" if self.passed else "ABOVE"
        return (
            f"{self.source}: {self.rows_read} read = {self.rows_accepted} accepted + {self.rows_quarantined} "
            f"quarantined; reject share {self.reject_share:.4%} {verdict} the limit {self.max_reject_share:.2%}"
        )


@dataclass(frozen=True)
class TableCheck:
    """One named check on a computed table: verdict, failing-row count and a readable message."""

    name: str
    passed: bool
    failing_rows: int
    message: str


def regions_kept_check(rows_read: int, rows_rejected: int, max_share: float, examples: list[str]) -> TableCheck:
    """The regions gate: at most `max_share` of the boundary rows may be rejected (0 by default).

    Stricter than the row gate because every record of a lost region is lost with it; `examples` name
    rejected rows (file, row, rule) for the message.
    """
    share = reject_share(rows_rejected, rows_read)
    if share <= max_share:
        return TableCheck(REGIONS_CHECK, True, rows_rejected,
                          f"regions: {rows_rejected} of {rows_read} rejected, within "
                          f"quality.max_region_reject_share {max_share:.2%}")
    return TableCheck(REGIONS_CHECK, False, rows_rejected, (
        f"regions: {rows_rejected} of {rows_read} boundary rows rejected ({share:.2%}, above "
        f"quality.max_region_reject_share {max_share:.2%}; rule: no region may be lost, because every record of a "
        f"lost region is lost with it): {'; '.join(examples)}. Fix these rows of the boundary file, or raise "
        f"quality.max_region_reject_share to accept losing them"))


def _check(name: str, failing: pd.DataFrame, what: str, keys: list[str]) -> TableCheck:
    examples = failing[keys].head(5).to_dict("records")
    message = f"{what}: all rows pass" if failing.empty else f"{what}: {len(failing)} rows fail, e.g. {examples}"
    return TableCheck(name, failing.empty, len(failing), message)


def region_period_checks(frame: pd.DataFrame, region_ids: set[str], periods: list[int]) -> list[TableCheck]:
    """Every region present per period; population > 0; cases <= population; expected > 0."""
    keys = ["region_id", "period"]
    present = set(zip(frame["region_id"], frame["period"], strict=True))
    missing = pd.DataFrame(
        sorted((r, p) for r in region_ids for p in periods if (r, p) not in present), columns=keys
    )
    population = frame["population"]
    return [
        _check("every_region_present", missing, "every region in every period", keys),
        _check("population_positive", frame[(population <= 0).fillna(False)], "population > 0", keys),
        _check(
            "cases_within_population",
            frame[(frame["cases"] > population).fillna(False)],
            "cases <= population",
            keys,
        ),
        _check(
            "expected_positive", frame[~(frame["expected_cases"] > 0).fillna(False)], "expected_cases > 0", keys
        ),
    ]


def exposure_checks(frame: pd.DataFrame, region_ids: set[str], periods: list[int]) -> list[TableCheck]:
    """Every region present per period and pollutant; completeness is a share; values only where assigned."""
    keys = ["region_id", "period", "pollutant"]
    present = set(zip(frame["region_id"], frame["period"], frame["pollutant"], strict=True))
    pollutants = sorted(set(frame["pollutant"]))
    missing = pd.DataFrame(
        sorted((r, p, q) for r in region_ids for p in periods for q in pollutants if (r, p, q) not in present),
        columns=keys,
    )
    unassigned = frame["assignment_method"] == "none"
    return [
        _check("every_region_present", missing, "every region in every period for every pollutant", keys),
        _check(
            "completeness_is_share",
            frame[(~frame["completeness"].between(0, 1)).fillna(False)],
            "0 <= completeness <= 1",
            keys,
        ),
        _check(
            "no_invented_values",
            frame[(unassigned & frame["mean"].notna()).fillna(False)],
            "regions without a station in range have no exposure value",
            keys,
        ),
    ]
