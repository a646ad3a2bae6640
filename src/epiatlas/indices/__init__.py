"""Socioeconomic deprivation indices by exploratory factor analysis (factor-analyzer); no Dagster, no DuckDB."""

from epiatlas.indices.fit import IndicesResult, fit_indices
from epiatlas.indices.settings import IndicesSettings, builtin_indicators

__all__ = ["IndicesResult", "IndicesSettings", "builtin_indicators", "fit_indices"]
