"""Specific, actionable exception types. Each message names the file, column and rule involved."""

from __future__ import annotations


class EpiatlasError(Exception):
    """Base class for every error epiatlas raises on purpose."""


class ConfigError(EpiatlasError):
    """The YAML configuration is missing, malformed or inconsistent."""


class ContractError(EpiatlasError):
    """A data contract file is malformed."""


class SourceError(EpiatlasError):
    """An input file cannot be ingested as a whole (as opposed to single bad rows, which are quarantined)."""


class MissingSourceFileError(SourceError):
    """The configured input file does not exist."""


class EmptySourceError(SourceError):
    """The input file has no data rows."""


class SourceEncodingError(SourceError):
    """The input file is not in the configured text encoding."""


class SchemaMismatchError(SourceError):
    """Required columns are missing, or unexpected columns are present."""


class GeometryError(SourceError):
    """Wrong or missing CRS, or unusable geometry in a boundary file."""


class WarehouseError(EpiatlasError):
    """The warehouse layout is missing a table or cannot be published."""


class SourceParseError(SourceError):
    """The file is not readable in its format at all (malformed CSV, broken Parquet or GIS file)."""


class ReconciliationError(EpiatlasError):
    """Rows read from a file do not equal rows accepted plus rows quarantined (a bug, never a data problem)."""


class ModelError(EpiatlasError):
    """A model cannot be fit on the data given (degenerate input, too few groups, unknown covariate)."""


class WarehouseLockedError(WarehouseError):
    """Another run holds the warehouse lock; the message names the holder and how to clear a stale lock."""
