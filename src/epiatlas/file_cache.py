"""Parse a file once per process: a result cached under the file's path, size and modification time, so an edited
file is read again and an unchanged one never is (config and contracts are read by every step and asset)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cached_parse(parse: Callable[[Path], T]) -> Callable[[Path], T]:
    """`parse` wrapped so that each (path, size, mtime) is parsed once; results must be immutable (frozen models)."""

    @lru_cache(maxsize=256)
    def _parse(path: Path, size: int, mtime_ns: int) -> T:
        return parse(path)

    def parse_once(path: Path) -> T:
        path = Path(path).resolve()
        try:
            stat = path.stat()
        except OSError:
            return parse(path)  # the parser reports the missing or unreadable file
        return _parse(path, stat.st_size, stat.st_mtime_ns)

    parse_once.cache_clear = _parse.cache_clear  # type: ignore[attr-defined]
    return parse_once
