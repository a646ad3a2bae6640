"""Indicator matrix from a region x period frame: column, value and shape checks, optional logit transform."""

from __future__ import annotations

import numpy as np
import pandas as pd

from epiatlas.errors import IndicesError

KEYS = ["region_id", "period"]
LOGIT_OFFSET = 0.5  # percentage points added to share and complement: the empirical logit keeps 0 % and 100 % finite


def _first_key(frame: pd.DataFrame, mask: np.ndarray) -> str:
    """'region_id=..., period=...' of the first row where `mask` holds."""
    row = frame.loc[mask, KEYS].iloc[0]
    return f"region_id {row['region_id']}, period {row['period']}"


def _check_columns(frame: pd.DataFrame, indicators: list[str]) -> None:
    """Raise unless the keys (non-null, integer period) and numeric indicator columns are present."""
    missing_keys = [c for c in KEYS if c not in frame.columns]
    if missing_keys:
        raise IndicesError(
            f"indicator frame lacks key column(s) {missing_keys}; it needs region_id, period and the indicators"
        )
    if not pd.api.types.is_integer_dtype(frame["period"]):
        raise IndicesError(f"indicator frame column 'period' is {frame['period'].dtype}, not integer (e.g. the year)")
    if frame["region_id"].isna().any():
        raise IndicesError(f"{int(frame['region_id'].isna().sum())} row(s) of the indicator frame have no region_id")
    unknown = [c for c in indicators if c not in frame.columns]
    if unknown:
        available = sorted(c for c in frame.columns if c not in KEYS)
        raise IndicesError(
            f"unknown indicator column(s) {unknown}: not in the indicator frame (columns: {available}); "
            "fix indices.indicators in the config"
        )
    non_numeric = [c for c in indicators if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise IndicesError(f"indicator column(s) {non_numeric} are not numeric; indicators must be numbers")


def _check_values(frame: pd.DataFrame, indicators: list[str]) -> None:
    """Raise on missing or non-finite indicator values and on repeated (region_id, period) keys."""
    values = frame[indicators].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        per_column = {c: int(n) for c, n in zip(indicators, bad.sum(axis=0), strict=True) if n}
        raise IndicesError(
            f"{int(bad.any(axis=1).sum())} row(s) have missing or non-finite indicator values {per_column} "
            f"(first at {_first_key(frame, bad.any(axis=1))}); factor analysis needs complete rows: "
            "drop those regions or impute the values before fitting"
        )
    duplicated = frame.duplicated(KEYS, keep=False).to_numpy()
    if duplicated.any():
        raise IndicesError(
            f"{int(duplicated.sum())} rows share a (region_id, period) key (first at {_first_key(frame, duplicated)}); "
            "the indicator frame needs one row per region and period"
        )


def logit_percent(values: np.ndarray, names: list[str]) -> np.ndarray:
    """Empirical logit log((p + 0.5) / (100.5 - p)) of percent values; values outside 0-100 raise."""
    outside = (values < 0) | (values > 100)
    if outside.any():
        per_column = {c: int(n) for c, n in zip(names, outside.sum(axis=0), strict=True) if n}
        raise IndicesError(
            f"transform 'logit' needs percent indicators in [0, 100]; values outside: {per_column}. "
            "Use transform 'none' for indicators that are not percentages"
        )
    return np.log((values + LOGIT_OFFSET) / (100.0 + LOGIT_OFFSET - values))


def indicator_frame(frame: pd.DataFrame, indicators: list[str]) -> pd.DataFrame:
    """Keys and indicators only, rows sorted by period then region_id; raises on bad columns or values."""
    _check_columns(frame, indicators)
    _check_values(frame, indicators)
    return frame[KEYS + indicators].sort_values(KEYS, kind="stable").reset_index(drop=True)


def check_block(values: np.ndarray, names: list[str], label: str) -> None:
    """Raise when one fit's matrix has too few rows or a constant indicator."""
    n_rows, n_cols = values.shape
    if n_rows <= n_cols:
        raise IndicesError(
            f"{label}: {n_rows} rows for {n_cols} indicators; factor analysis needs more rows (regions x periods) "
            "than indicators: pool the periods (indices.pooled: true) or use fewer indicators"
        )
    spread = values.max(axis=0) - values.min(axis=0)
    constant = [c for c, s in zip(names, spread, strict=True) if s <= 1e-12 * max(1.0, np.abs(values).max())]
    if constant:
        raise IndicesError(f"{label}: indicator(s) {constant} are constant; remove them from indices.indicators")
