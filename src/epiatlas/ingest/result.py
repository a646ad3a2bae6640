"""What one ingest produced: row counts and the names of the staged and quarantine tables."""

from __future__ import annotations

from dataclasses import dataclass

from epiatlas.quality import reject_share


@dataclass(frozen=True)
class IngestResult:
    """Counts of one ingest; rows_read = rows_accepted + rows_quarantined always holds.

    The quarantine table also holds `rows_repaired` rows (action `repaired`): accepted rows whose geometry was
    repaired; they are counted in rows_accepted, not in rows_quarantined.
    """

    source: str
    file: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    accepted_table: str
    quarantine_table: str
    rows_repaired: int = 0

    @property
    def reject_share(self) -> float:
        """Share of the rows read that went to quarantine (0 for an empty read)."""
        return reject_share(self.rows_quarantined, self.rows_read)
