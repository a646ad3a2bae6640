"""Ingest group, the user's own covariates: one asset per table under `covariates:` in the config.

Each is built by the ingest group's asset builder with a contract made from the config, so it has the same
reconciliation check, contract checks and quarantine partition (`source=covariates_<name>`) as every source.
"""

import dagster as dg

from epiatlas.config import EpiatlasConfig
from epiatlas.covariates import CovariateTableConfig
from epiatlas.covariates.source import covariate_contract, covariate_settings, covariate_source_config, covariate_table
from orchestration.defs.ingest import build_ingest_asset


def build_covariate_asset(name: str, table: CovariateTableConfig) -> dg.AssetsDefinition:
    """The asset `covariates_<name>`; at run time it reads the table's settings from the run's config."""
    return build_ingest_asset(
        covariate_table(name),
        covariate_contract(name, table),
        lambda cfg: covariate_source_config(name, covariate_settings(cfg, name)),
    )


def build_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """One ingest asset per configured covariate table (none when the config has no `covariates:`)."""
    return dg.Definitions(assets=[build_covariate_asset(name, table) for name, table in cfg.covariates.items()])
