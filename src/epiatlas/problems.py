"""One thing the user has to fix, found before any table is touched: the config key it concerns and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing to fix: the config key or source it concerns, and what is wrong and what to do."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"
