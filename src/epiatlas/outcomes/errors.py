"""Exceptions raised while deriving outcomes and exposure; each names the definition or table at fault."""

from __future__ import annotations

from epiatlas.errors import ConfigError, EpiatlasError


class CaseDefinitionError(ConfigError):
    """An ICD-10 code or range in `outcomes.case_icd10` is malformed."""


class ReferencePopulationError(ConfigError):
    """The configured standard population does not match the census age groups or years."""


class AgeGroupError(EpiatlasError):
    """Census age-group labels cannot be parsed, or a record's age falls below every group."""


class MissingPopulationError(EpiatlasError):
    """A requested period, or a stratum with cases, has no census population."""


class MissingPeriodError(EpiatlasError):
    """Aggregated counts carry no period and the caller gave none to assign."""


class ExposureInputError(EpiatlasError):
    """Station or region locations needed for exposure assignment are unusable."""
