"""Reports group: the `region_profile` mart (published in the catalog) and the regional HTML reports (read from it).

`region_profile` is upstream of the catalog like every table it publishes; the `reports` asset is downstream of
the catalog, reads only the published catalog, and is partitioned by period. Thin assets over `epiatlas.reports`.
"""

import dagster as dg

from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import load_contract
from epiatlas.contracts.conform import write_conformed
from epiatlas.reports.profile import region_profile, revealed_cells
from orchestration.defs.contract_checks import contract_check_results, contract_check_specs
from orchestration.metadata import table_metadata
from orchestration.resources import EpiatlasResource

GROUP = "reports"
PROFILE = "region_profile"
NOTHING_HIDDEN_REVEALED = "shows_only_what_published_outcomes_shows"


def _profile_inputs(cfg: EpiatlasConfig) -> dict[str, str | None]:
    """Stored table feeding each optional argument of `region_profile`, None when this config has no such table."""
    has_indices = cfg.sources.socioeconomic_indicators is not None or bool(cfg.covariates)
    return {
        "indices": "socioeconomic_indices" if has_indices else None,
        "exposure": "pollutant_exposure" if cfg.sources.pollutant_readings is not None else None,
        "predictions": "model_predictions",
        "drivers": "region_drivers",
        "imaging": "cxr_region_summary" if cfg.imaging is not None else None,
    }


def build_profile_asset(cfg: EpiatlasConfig) -> dg.AssetsDefinition:
    """The region_profile mart, from public tables only, with its contract checks and the disclosure check."""
    optional = {arg: table for arg, table in _profile_inputs(cfg).items() if table}
    inputs = ["published_outcomes", "regions", *optional.values()]
    contract = load_contract(PROFILE)

    @dg.asset(
        name=PROFILE,
        group_name=GROUP,
        deps=inputs,
        description=contract.description,
        kinds={"python", "parquet"},
        tags={"privacy": contract.privacy},
        check_specs=[
            *contract_check_specs(contract),
            dg.AssetCheckSpec(NOTHING_HIDDEN_REVEALED, asset=PROFILE,
                              description="every outcome cell equals published_outcomes (hidden cells blank) and no "
                                          "residual is shown where the count is hidden"),
        ],  # fmt: skip
    )
    def _profile(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        warehouse = epiatlas.warehouse()
        with warehouse.connect(inputs) as con:
            tables = {t: con.table(t).df() for t in inputs}
        published = tables["published_outcomes"]
        profile = region_profile(published, tables["regions"], **{arg: tables[t] for arg, t in optional.items()})
        written = write_conformed(warehouse, contract, profile)
        with warehouse.connect([PROFILE]) as con:
            revealed = revealed_cells(con.table(PROFILE).df(), published)
        check = dg.AssetCheckResult(
            check_name=NOTHING_HIDDEN_REVEALED, passed=revealed.empty,
            description=f"{len(revealed)} region-periods differ from published_outcomes",
            metadata={"failing_rows": len(revealed), "examples": str(revealed.head(5).to_dict("records"))},
        )  # fmt: skip
        return dg.MaterializeResult(
            metadata={**table_metadata(contract, written), "suppressed_rows": int(profile["suppressed"].sum()),
                      "inputs": ", ".join(inputs)},
            check_results=[*contract_check_results(warehouse, contract), check],
        )  # fmt: skip

    return _profile


def build_profile_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """The mart, upstream of the catalog (it is one of the tables the catalog publishes)."""
    return dg.Definitions(assets=[build_profile_asset(cfg)])
