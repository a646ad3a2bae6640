"""Locate the input files of a source and translate its text encoding for DuckDB."""

from __future__ import annotations

import codecs
import glob
from pathlib import Path

from epiatlas.errors import EmptySourceError, MissingSourceFileError, SourceEncodingError

_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "iso8859-1": "latin-1"}


def source_files(path: Path) -> list[Path]:
    """The file, or the sorted files matching a glob pattern; missing or zero-byte files raise."""
    files = [Path(p) for p in sorted(glob.glob(str(path)))] if glob.has_magic(str(path)) else [path]
    if not files or not all(f.is_file() for f in files):
        absent = next((f for f in files if not f.is_file()), path)
        raise MissingSourceFileError(
            f"{absent}: input file not found (rule: the configured path must exist). Check sources.<name>.path "
            f"in the config; relative paths are resolved against the config file's directory."
        )
    for f in files:
        if f.stat().st_size == 0:
            raise EmptySourceError(f"{f}: the file is empty (0 bytes); rule: a source needs a header and data rows")
    return files


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
