"""Explicit thread control for numerical fits: one BLAS thread, a fixed OpenMP count, reproducible results.

On a 2-core machine BLAS and OpenMP threads oversubscribe the cores (glum ran 3-4x faster with one BLAS
thread) and multithreaded reductions made fits differ in the last bits between runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fit_threads(openmp: int = 1) -> Iterator[None]:
    """Limit BLAS to one thread and OpenMP to `openmp` threads for the duration of the block.

    threadpoolctl only limits runtimes already loaded, so the fitting libraries (glum/tabmat and LightGBM bring
    their own OpenMP) are imported first; otherwise a lazy import inside the block escapes the limit.
    """
    import glum  # noqa: F401
    import lightgbm  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), threadpool_limits(limits=openmp, user_api="openmp"):
        yield
