"""Row accounting for ingestion: every row read is either accepted or quarantined."""

from __future__ import annotations

from dataclasses import dataclass


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
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

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
