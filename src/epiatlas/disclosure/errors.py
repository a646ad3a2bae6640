"""Exceptions raised by disclosure control; each names the table, column, period or region at fault."""

from __future__ import annotations

from epiatlas.errors import EpiatlasError


class DisclosureInputError(EpiatlasError):
    """The private table or the region hierarchy given to disclosure control is malformed."""


class UnprotectableError(EpiatlasError):
    """No suppression pattern hides a small cell of a period (e.g. a study of a single region)."""
