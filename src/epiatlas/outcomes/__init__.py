"""Region-period outcomes (cases, SHR, rates) and pollutant exposure, computed in DuckDB from canonical tables.

Each function reads the canonical tables (`regions`, `census`, `hospitalizations` or `hospitalization_counts`,
`pollutant_stations`, `pollutant_readings`) from the connection it is given, leaves small helper TEMP tables
named `_epiatlas_*` there, and returns a region x period[ x pollutant] DataFrame in contract column order,
sorted by key, with nullable dtypes (NULL = pd.NA) and definitions in `DataFrame.attrs["metadata"]`.
Periods are calendar years; each year is computed from its own data only, so partitions are independent.
"""

from epiatlas.outcomes.case_definitions import case_predicate_sql, parse_case_definition
from epiatlas.outcomes.exposure import COLUMNS as POLLUTANT_EXPOSURE_COLUMNS
from epiatlas.outcomes.exposure import pollutant_exposure, station_assignment
from epiatlas.outcomes.region_period import COLUMNS as REGION_PERIOD_COLUMNS
from epiatlas.outcomes.region_period import region_period_outcomes, region_period_outcomes_from_counts

__all__ = [
    "POLLUTANT_EXPOSURE_COLUMNS",
    "REGION_PERIOD_COLUMNS",
    "case_predicate_sql",
    "parse_case_definition",
    "pollutant_exposure",
    "region_period_outcomes",
    "region_period_outcomes_from_counts",
    "station_assignment",
]
