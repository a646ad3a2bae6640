"""The user's own covariates: region (x period) tables of numeric columns named in the config.

`settings` holds the typed config (imported by `epiatlas.config`, so this package imports nothing that needs the
config); `source` builds each table's contract and source settings from it and ingests it like every other source,
as table `covariates_<name>`.
"""

from epiatlas.covariates.settings import CovariateTableConfig, CovariateVariable

__all__ = ["CovariateTableConfig", "CovariateVariable"]
