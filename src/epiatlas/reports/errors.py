"""Exceptions raised while building region profiles and reports; each names the table, region or period at fault."""

from __future__ import annotations

from epiatlas.errors import EpiatlasError


class ReportError(EpiatlasError):
    """A report cannot be built: the catalog lacks a table it reads, or the region or period is unknown."""
