"""Dagster resources: the epiatlas configuration file and the warehouse it names."""

import dagster as dg

from epiatlas.config import EpiatlasConfig, load_config
from epiatlas.publish import warehouse_for
from epiatlas.warehouse import Warehouse


class EpiatlasResource(dg.ConfigurableResource):
    """Points a run at one epiatlas YAML config (the same file `epiatlas run --config` takes)."""

    config_path: str

    def settings(self) -> EpiatlasConfig:
        return load_config(self.config_path)

    def warehouse(self) -> Warehouse:
        return warehouse_for(self.settings())
