"""Locate the input files of a source and translate its text encoding for DuckDB."""

from __future__ import annotations

import codecs
import glob
from pathlib import Path

from epiatlas.errors import EmptySourceError, MissingSourceFileError, SourceEncodingError, UnreadableSourceError

_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "iso8859-1": "latin-1"}


def source_files(path: Path) -> list[Path]:
    """The file, or the sorted files matching a glob pattern; missing or zero-byte files raise."""
    files = [Path(p) for p in sorted(glob.glob(str(path)))] if glob.has_magic(str(path)) else [path]
    if not files or not all(f.exists() for f in files):
        absent = next((f for f in files if not f.exists()), path)
        raise MissingSourceFileError(
            f"{absent}: input file not found (rule: the configured path must exist). Check sources.<name>.path "
            f"in the config; relative paths are resolved against the config file's directory."
        )
    for f in files:
        read_head(f, 1)
        if f.stat().st_size == 0:
            raise EmptySourceError(f"{f}: the file is empty (0 bytes); rule: a source needs a header and data rows")
    return files


def read_head(file: Path, size: int) -> bytes:
    """The first `size` bytes of a file; a directory or an unreadable file raises UnreadableSourceError."""
    if file.is_dir():
        raise UnreadableSourceError(f"{file}: is a directory, not a file (rule: sources.<name>.path names a file "
                                    f"or a glob pattern of files). Point the path at the file itself, e.g. "
                                    f"{file / '*.csv'} for every CSV in that folder")
    try:
        with file.open("rb") as fh:
            return fh.read(size)
    except PermissionError as exc:
        raise UnreadableSourceError(f"{file}: permission denied (rule: input files must be readable by the user "
                                    f"running epiatlas). Grant read access (e.g. chmod a+r) or copy the file to a "
                                    f"readable place and update sources.<name>.path") from exc
    except OSError as exc:
        raise UnreadableSourceError(f"{file}: cannot be read: {exc.strerror or exc} (rule: input files must be "
                                    f"readable). Check the file and the disk it is on") from exc


def require_text(file: Path, encoding: str) -> None:
    """A text file (CSV) must not hold NUL bytes in its first 64 KiB, unless the encoding is UTF-16/32."""
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        return
    nul = read_head(file, 65536).find(b"\x00")
    if nul >= 0:
        raise UnreadableSourceError(
            f"{file}: is a binary file, not CSV text (rule: csv format; NUL byte at offset {nul}). "
            f"Export the data as CSV, or set 'format' for this source if it is Parquet or a GIS file"
        )


def duckdb_encoding(file: Path, encoding: str) -> str:
    """DuckDB's name for a Python encoding name; DuckDB itself reads only utf-8, utf-16 and latin-1."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise SourceEncodingError(f"{file}: unknown encoding {encoding!r} in the config") from exc
    if name not in _DUCKDB_ENCODINGS:
        raise SourceEncodingError(
            f"{file}: encoding {encoding!r} cannot be read; use utf-8, utf-16 or latin-1, "
            f"or re-encode the file to UTF-8 (e.g. iconv -f {encoding} -t utf-8)"
        )
    return _DUCKDB_ENCODINGS[name]
