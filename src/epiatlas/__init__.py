"""epiatlas: explain why hospitalization burden differs between regions."""

import atexit
import typing


def _clear_typing_caches() -> None:
    """Drop typing's caches of resolved annotations at exit, which hold DuckDB's binding types; without this
    nanobind prints a screenful of benign 'leaked instance' lines when the interpreter ends (nanobind#69)."""
    for cleanup in typing._cleanups:  # noqa: SLF001 - the documented workaround
        cleanup()


atexit.register(_clear_typing_caches)

__version__ = "0.1.0"
