"""Each covariate table as a source: its contract and source settings built from the config, then ingested.

    result = ingest_covariates(con, "deprivation", cfg.covariates["deprivation"])  # -> staged_covariates_deprivation
"""

from __future__ import annotations

import duckdb

from epiatlas.config import EpiatlasConfig, SourceConfig
from epiatlas.contracts import ColumnSpec, Contract
from epiatlas.covariates.settings import CovariateTableConfig
from epiatlas.errors import ConfigError
from epiatlas.ingest import IngestResult, ingest_source

TABLE_PREFIX = "covariates_"
_PERIOD = ColumnSpec(name="period", type="INTEGER", description="Calendar year the values refer to.",
                     unit="year", min=1900, max=2200)


def covariate_table(name: str) -> str:
    """The stored table (and quarantine source) of covariate table `name`: covariates_<name>."""
    return TABLE_PREFIX + name


def covariate_contract(name: str, cfg: CovariateTableConfig) -> Contract:
    """The contract of covariates_<name>: key region_id [+ period], each variable DOUBLE with its unit and range."""
    region = ColumnSpec(name="region_id", type="VARCHAR", description="Region code.", references="regions.region_id")
    variables = [
        ColumnSpec(name=var_name, type="DOUBLE", description=var.description, unit=var.unit, min=var.min,
                   max=var.max, integer=var.integer, nullable=var.nullable)
        for var_name, var in cfg.variables.items()
    ]
    keys = [region, _PERIOD] if cfg.period_column else [region]
    return Contract(
        name=covariate_table(name),
        kind="source",
        privacy="public",
        description=cfg.description or f"The user's covariates `{name}` (config key covariates.{name}).",
        primary_key=[c.name for c in keys],
        columns=[*keys, *variables],
    )


def covariate_source_config(name: str, cfg: CovariateTableConfig) -> SourceConfig:
    """The settings `ingest_source` reads the file with: canonical column -> file column."""
    period = {"period": cfg.period_column} if cfg.period_column else {}
    source = SourceConfig(path=cfg.path, format=cfg.format, encoding=cfg.encoding, delimiter=cfg.delimiter,
                          columns={"region_id": cfg.region_column, **period, **cfg.file_columns},
                          extra_columns=cfg.extra_columns)
    if source.resolved_format not in ("csv", "parquet"):
        raise ConfigError(f"covariates.{name}: {cfg.path} is read as {source.resolved_format}, but covariate tables "
                          f"are CSV or Parquet; convert the file or set 'format'")
    return source


def covariate_settings(cfg: EpiatlasConfig, name: str) -> CovariateTableConfig:
    """The settings of covariate table `name` in a config, or a ConfigError listing the configured ones."""
    if name not in cfg.covariates:
        raise ConfigError(f"{cfg.config_path or 'the configuration'} has no covariate table {name!r} under "
                          f"'covariates'; it has {sorted(cfg.covariates)}")
    return cfg.covariates[name]


def ingest_covariates(con: duckdb.DuckDBPyConnection, name: str, cfg: CovariateTableConfig) -> IngestResult:
    """Create staged_covariates_<name> and quarantine_covariates_<name> in `con` (which needs `regions`)."""
    return ingest_source(con, covariate_table(name), covariate_source_config(name, cfg), covariate_contract(name, cfg))
