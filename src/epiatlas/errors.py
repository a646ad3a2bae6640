"""Specific, actionable exception types. Each message names the file, column and rule involved."""

from __future__ import annotations

import errno
import re

_OS_ERROR = re.compile(r"\[Errno (\d+)\] ([^:\n]+)(?:: '([^'\n]*)')?")
_DISK_FULL = "No space left on device"


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


class UnreadableSourceError(SourceError):
    """The configured input exists but cannot be read as a file (a directory, permission denied, binary)."""


class StorageError(EpiatlasError):
    """The operating system refused to read or write a file (permission, read-only disk, a folder in the way)."""


class DiskFullError(StorageError):
    """No space left on the device that holds the warehouse."""


class PreflightError(ConfigError):
    """Checks before any table is touched found problems; the message lists every one of them."""


def os_error_in(message: str) -> OSError | None:
    """The OS error an error message reports ('[Errno N] ...', or a library's 'No space left on device'), or None."""
    if found := _OS_ERROR.search(message):
        code, strerror, filename = found.groups()
        return OSError(int(code), strerror, filename)
    return OSError(errno.ENOSPC, _DISK_FULL) if _DISK_FULL in message else None


def from_os_error(exc: OSError, doing: str) -> EpiatlasError:
    """The specific epiatlas error for an OS error met while `doing` something (e.g. "writing table census")."""
    where = f"{doing}: {exc.filename}" if exc.filename else doing
    if exc.errno == errno.ENOSPC:
        return DiskFullError(f"{where}: no space left on the device (rule: the warehouse needs free space). Free "
                             f"space or move warehouse.root to a larger disk, then run again; files are written "
                             f"under temporary names first, so what was stored before is intact")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"{where}: {exc.strerror} (rule: epiatlas must be able to read its inputs and write "
                            f"the warehouse). Fix the permissions, or set warehouse.root to a writable folder")
    if exc.errno == errno.EISDIR:
        return StorageError(f"{where}: is a directory where a file was expected (rule: paths name files). "
                            f"Remove or rename that folder, or point the setting at the file")
    return StorageError(f"{where}: {exc.strerror or exc} (errno {exc.errno}); check the path, the disk and the "
                        f"folder, then run again")


class ReconciliationError(EpiatlasError):
    """Rows read from a file do not equal rows accepted plus rows quarantined (a bug, never a data problem)."""


class ModelError(EpiatlasError):
    """A model cannot be fit on the data given (degenerate input, too few groups, unknown covariate)."""


class WarehouseLockedError(WarehouseError):
    """Another run holds the warehouse lock; the message names the holder and how to clear a stale lock."""


class IndicesError(EpiatlasError):
    """Indicators cannot be factor-analysed (unknown, missing or constant columns, singular correlations)."""


class ImagingError(EpiatlasError):
    """An imaging step cannot run (no usable images, unknown architecture, bad checkpoint, image root escape)."""


class ImageReadError(ImagingError):
    """One image file cannot be used; `reason` is the quarantine rule it breaks."""

    reason = "unreadable"


class MissingImageError(ImageReadError):
    """The image file does not exist."""

    reason = "missing_file"


class UnreadableImageError(ImageReadError):
    """The file is not a decodable image (corrupt, truncated, not an image format)."""

    reason = "unreadable"


class UnsupportedImageError(ImageReadError):
    """The image decodes but its mode, photometric interpretation or bit depth is not supported."""

    reason = "unsupported_format"


class TinyImageError(ImageReadError):
    """The image is smaller than the minimum side length a chest X-ray needs."""

    reason = "tiny_image"


class DicomWithoutPixelsError(ImageReadError):
    """A DICOM file carries no pixel data (e.g. a structured report or a header-only export)."""

    reason = "no_pixel_data"


class ImageOutsideRootError(ImageReadError):
    """An image path resolves (after `..` and symlinks) to a place outside the configured image root."""

    reason = "outside_root"
