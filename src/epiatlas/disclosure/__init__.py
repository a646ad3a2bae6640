"""Disclosure control of published outcomes: primary and complementary cell suppression, safe margins, audit.

Library code only (DataFrames in, result objects out); the catalog, the region profile mart and the reports
all publish region x period outcomes through `protect_outcomes`.
"""

from epiatlas.disclosure.audit import AUDIT_COLUMNS, differencing_bounds, disclosure_failures
from epiatlas.disclosure.blocks import PERIOD, PRIMARY, SECONDARY
from epiatlas.disclosure.errors import DisclosureInputError, UnprotectableError
from epiatlas.disclosure.suppression import (
    DERIVED_COLUMNS,
    MARGIN_COLUMNS,
    PUBLISHED_COLUMNS,
    DisclosureCounts,
    DisclosureResult,
    protect_outcomes,
)

__all__ = [
    "AUDIT_COLUMNS",
    "DERIVED_COLUMNS",
    "MARGIN_COLUMNS",
    "PERIOD",
    "PRIMARY",
    "PUBLISHED_COLUMNS",
    "SECONDARY",
    "DisclosureCounts",
    "DisclosureInputError",
    "DisclosureResult",
    "UnprotectableError",
    "differencing_bounds",
    "disclosure_failures",
    "protect_outcomes",
]
