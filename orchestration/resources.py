"""Dagster resources: the epiatlas configuration file and the warehouse it names."""

import dagster as dg
from pydantic import Field

from epiatlas.config import EpiatlasConfig, load_config
from epiatlas.publish import warehouse_for
from epiatlas.warehouse import Warehouse


class EpiatlasResource(dg.ConfigurableResource):
    """Points a run at one epiatlas YAML config (the same file `epiatlas run --config` takes)."""

    config_path: str = Field(
        description="Absolute path of the epiatlas YAML config (sources, periods, models, imaging, reports) whose "
        "warehouse this run reads and writes. Defaults to the file EPIATLAS_CONFIG named when the code location loaded; "
        "another file must declare the same sources, covariates and periods, since those shape the asset graph."
    )

    def settings(self) -> EpiatlasConfig:
        """The parsed and validated config."""
        return load_config(self.config_path)

    def warehouse(self) -> Warehouse:
        """The warehouse the config names."""
        return warehouse_for(self.settings())
