"""Dagster resources: the epiatlas configuration file and the warehouse it names."""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from epiatlas.analyses import analysis_plan
from epiatlas.config import EpiatlasConfig, load_config
from epiatlas.contracts import load_contract
from epiatlas.contracts.conform import write_conformed
from epiatlas.errors import ConfigError
from epiatlas.publish import warehouse_for
from epiatlas.warehouse import Warehouse


def graph_shape(cfg: EpiatlasConfig) -> dict[str, object]:
    """What shapes the asset graph: the sources, covariate tables, periods and which analyses are on."""
    return {
        "sources": sorted(cfg.sources.configured()),
        "covariates": sorted(cfg.covariates),
        "periods": cfg.periods.keys,
        "analyses": [f"{a.name} {'on' if a.on else 'off'}" for a in analysis_plan(cfg).analyses],
    }


class EpiatlasResource(dg.ConfigurableResource):
    """Points a run at one epiatlas YAML config (the same file `epiatlas run --config` takes)."""

    config_path: str = Field(
        description="Absolute path of the epiatlas YAML config (sources, periods, models, imaging, reports) whose "
        "warehouse this run reads and writes. Defaults to the file EPIATLAS_CONFIG named when the code location loaded; "
        "another file must declare the same sources, covariates, periods and analyses, since those shape the asset "
        "graph (checked when the run starts)."
    )
    graph_config_path: str | None = Field(
        None, description="The config the code location built its asset graph from (set by the code location)."
    )

    def settings(self) -> EpiatlasConfig:
        """The parsed and validated config; ConfigError when it would need another asset graph than this one."""
        cfg = load_config(self.config_path)
        graph = load_config(self.graph_config_path) if self.graph_config_path else cfg
        if graph.config_path != cfg.config_path:
            built, given = graph_shape(graph), graph_shape(cfg)
            differ = [f"{key}: {given[key]} (the graph has {built[key]})" for key in built if built[key] != given[key]]
            if differ:
                raise ConfigError(
                    f"the run's config {cfg.config_path} needs another asset graph than the one loaded from "
                    f"{self.graph_config_path}: " + "; ".join(differ) + ". Restart the code location on that file "
                    f"(EPIATLAS_CONFIG={cfg.config_path} dagster dev -m orchestration.definitions) instead of "
                    "changing config_path in the launchpad"
                )
        return cfg

    def warehouse(self) -> Warehouse:
        """The warehouse the config names."""
        return warehouse_for(self.settings())

    def store(
        self,
        table: str,
        frame: pd.DataFrame,
        metadata: Mapping[str, Any] | None = None,
        checks: Sequence[dg.AssetCheckResult] = (),
        multi: bool = False,
    ) -> dg.MaterializeResult:
        """The one storage path of the assets: write `frame` as `table` in its contract's column order, then return
        its materialization with the table's metadata and its contract checks (re-reading what was stored) plus
        `checks`. `multi`: name the asset key, as a multi-asset's results must."""
        from orchestration.defs.contract_checks import contract_check_results
        from orchestration.metadata import table_metadata

        warehouse = self.warehouse()
        contract = load_contract(table)
        written = write_conformed(warehouse, contract, frame)
        return dg.MaterializeResult(
            asset_key=table if multi else None,
            metadata={**table_metadata(contract, written), **(metadata or {})},
            check_results=[*contract_check_results(warehouse, contract), *checks],
        )
