"""Models group: socioeconomic indices, the count models with their explanations, and the public figures.

Thin assets: read stored tables, call `epiatlas.indices` / `epiatlas.models`, write tables and artifacts,
attach metadata. Heavy libraries (lightgbm, shap, factor-analyzer, matplotlib) load inside the library calls.
"""


import pickle
from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

from epiatlas.analyses import AnalysisPlan
from epiatlas.artifacts import ArtifactStore, figure_table
from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import load_contract
from epiatlas.covariates.source import covariate_table
from epiatlas.indices import fit_indices
from epiatlas.indices.published import index_tables
from epiatlas.indices.sources import indicator_table
from epiatlas.models.analysis import fit_burden_models
from epiatlas.models.checks import model_checks
from epiatlas.models.contiguity import queen_contiguity
from epiatlas.models.figures import model_figures
from epiatlas.models.frame import imaging_columns, imaging_coverage, join_covariates, model_frame
from epiatlas.warehouse import Warehouse
from orchestration.defs.contract_checks import contract_check_specs
from orchestration.metadata import png_preview
from orchestration.resources import EpiatlasResource

GROUP = "models"
INDEX_TABLES = ["socioeconomic_indices", "factor_loadings", "factor_diagnostics"]
MODEL_TABLES = [
    "glm_coefficients",
    "glm_fit",
    "model_predictions",
    "gbm_shap",
    "region_drivers",
    "gbm_partial_dependence",
    "model_cv_comparison",
]
MODEL_CHECKS = {
    "shap_additivity": "base value + sum of SHAP = the GBM's log rate ratio for every row (1e-6)",
    "residuals_hidden_where_suppressed": "no residual is shown where published_outcomes hides the count",
    "same_folds": "GLM and GBM cross-validated on the same region-grouped folds",
}
TAGS = {"compute": "cpu"}


def _artifacts(warehouse: Warehouse) -> ArtifactStore:
    return ArtifactStore(warehouse.root / "artifacts")


def _store(
    epiatlas: EpiatlasResource,
    tables: dict[str, pd.DataFrame],
    metadata: dict[str, dict[str, Any]],
    checks: dict[str, list[dg.AssetCheckResult]] | None = None,
) -> list[dg.MaterializeResult]:
    """One MaterializeResult per table of a multi-asset, with its metadata and checks."""
    return [epiatlas.store(name, frame, metadata.get(name), (checks or {}).get(name, []), multi=True)
            for name, frame in tables.items()]  # fmt: skip


def _specs(tables: Sequence[str], deps: Sequence[str], description: str) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            name, group_name=GROUP, deps=list(deps), description=f"{load_contract(name).description}\n\n{description}",
            kinds={"python", "parquet"}, tags={"privacy": load_contract(name).privacy},
        )
        for name in tables
    ]


def build_indices_asset(plan: AnalysisPlan) -> dg.AssetsDefinition:
    """Factor analysis of the planned indicators into socioeconomic indices, loadings and diagnostics."""
    sources = list(plan.indicator_tables)

    @dg.multi_asset(
        name="socioeconomic_factor_analysis",
        specs=_specs(INDEX_TABLES, sources, f"Built by one factor analysis (settings: `indices:` in the config) of "
                                            f"{len(plan.indicators)} indicators: {', '.join(plan.indicators)}."),
        check_specs=[s for t in INDEX_TABLES for s in contract_check_specs(load_contract(t))],
        op_tags=TAGS,
    )
    def _indices(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource):
        cfg = epiatlas.settings()
        warehouse = epiatlas.warehouse()
        with warehouse.connect(sources) as con:
            indicators = con.table("socioeconomic_indicators").df() if "socioeconomic_indicators" in sources else None
            covariates = [con.table(t).df() for t in sources if t != "socioeconomic_indicators"]
        settings = plan.indices_settings(cfg.indices)
        table = indicator_table(indicators, covariates, [int(p) for p in cfg.periods.keys])
        result = fit_indices(table, settings)
        for warning in result.warnings:
            context.log.warning(warning)
        tables = index_tables(result, settings)
        diagnostics = tables["factor_diagnostics"]
        summary = {
            "kmo": float(diagnostics["kmo"].iloc[0]),
            "n_factors": int(diagnostics["n_factors"].iloc[0]),
            "factors": ", ".join(diagnostics["factor"]),
            "warnings": "; ".join(result.warnings) or "none",
        }
        yield from _store(epiatlas, tables, {"factor_diagnostics": summary})

    return _indices


def build_models_asset(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dg.AssetsDefinition:
    """GLMs for cases and severity, LightGBM with SHAP and partial dependence, fit on the private counts."""
    exposure = ["pollutant_exposure"] if cfg.sources.pollutant_readings is not None else []
    covariates = [covariate_table(name) for name in cfg.covariates]
    inputs = ["regions", "region_period_outcomes", "published_outcomes", *exposure, *covariates]
    has_indices = plan.indices.on
    inputs += ["socioeconomic_indices"] if has_indices else []
    imaging = list(cfg.models.imaging_covariates)
    inputs += ["cxr_region_summary"] if imaging else []  # the public, suppressed summary; never per-image rows

    @dg.multi_asset(
        name="count_models",
        specs=_specs(
            MODEL_TABLES, inputs,
            "Fit on the private, unsuppressed counts; nothing published gives a suppressed cell back "
            f"(settings: `models:` in the config). {plan.count_models}. {plan.severity}.",
        ),
        check_specs=[
            *(dg.AssetCheckSpec(name, asset="glm_fit", description=text) for name, text in MODEL_CHECKS.items()),
            *(s for t in MODEL_TABLES for s in contract_check_specs(load_contract(t))),
        ],
        op_tags=TAGS,
    )
    def _models(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource):
        cfg = epiatlas.settings()
        warehouse = epiatlas.warehouse()
        with warehouse.connect(inputs) as con:
            regions = con.execute("SELECT region_id, parent_id, geometry FROM regions ORDER BY region_id").df()
            summary = con.table("cxr_region_summary").df() if imaging else None
            frame = model_frame(
                con.table("region_period_outcomes").df(),
                regions,
                con.table("pollutant_exposure").df() if exposure else None,
                con.table("socioeconomic_indices").df() if has_indices else None,
                join_covariates([con.table(t).df() for t in covariates]),
                imaging_columns(summary, imaging) if imaging else None,
            )
            published = con.table("published_outcomes").df()
        models = fit_burden_models(frame, plan.models_config(cfg.models), queen_contiguity(regions),
                                   published)
        for note in models.notes:
            context.log.warning(note)
        store = _artifacts(warehouse)
        store.put("count_models", pickle.dumps(models.fitted_state()), kind="model", privacy="private", suffix="pkl")
        fit = models.tables["glm_fit"].set_index("outcome")
        summary = {
            "family": str(fit.loc["cases", "family"]),
            "alpha": float(fit.loc["cases", "alpha"]),
            "deviance_explained": float(fit.loc["cases", "deviance_explained"]),
            "region_periods_used": int(fit.loc["cases", "n"]),
            "rows_dropped_missing_covariates": int(fit.loc["cases", "n_dropped"]),
            "rows_dropped_by_reason": str(fit.loc["cases", "dropped_reasons"]),
            **(imaging_coverage(frame, summary) if summary is not None else {}),
            "covariates": ", ".join(models.covariates),
            "covariates_dropped": str(fit.loc["cases", "dropped_covariates"]),
            "severity_model": str(plan.severity),
            "top_drivers": ", ".join(models.top_drivers()),
            "seconds_per_step": dg.MetadataValue.json(models.timings),
        }
        checks = [
            dg.AssetCheckResult(check_name=c.name, asset_key="glm_fit", passed=c.passed, description=c.message,
                                metadata={"failing_rows": c.failing_rows})
            for c in model_checks(models, published)
        ]  # fmt: skip
        yield from _store(epiatlas, models.tables, {"glm_fit": summary}, {"glm_fit": checks})

    return _models


def build_figures_asset(has_indices: bool) -> dg.AssetsDefinition:
    """Public PNG figures of the models, stored as artifacts and as the `model_figures` table."""
    inputs = ["regions", "published_outcomes", "glm_coefficients", "gbm_partial_dependence", "gbm_shap",
              "model_predictions", *(["socioeconomic_indices"] if has_indices else [])]  # fmt: skip
    contract = load_contract("model_figures")

    @dg.asset(
        name="model_figures",
        group_name=GROUP,
        deps=inputs,
        description=contract.description,
        kinds={"python", "parquet"},
        tags={"privacy": contract.privacy},
        check_specs=contract_check_specs(contract),
    )
    def _figures(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
        cfg = epiatlas.settings()
        warehouse = epiatlas.warehouse()
        with warehouse.connect(inputs) as con:
            tables = {t: con.table(t).df() for t in inputs}
        args = (
            tables["glm_coefficients"], tables["gbm_partial_dependence"], tables["gbm_shap"],
            tables.get("socioeconomic_indices"), tables["published_outcomes"], tables["model_predictions"],
            tables["regions"], cfg.synthetic,
        )  # fmt: skip
        figures = model_figures(*args)
        previews = {f.name: f.png for f in model_figures(*args, size="preview")}
        return epiatlas.store("model_figures", figure_table(_artifacts(warehouse), figures),
                              {f"preview_{name}": png_preview(png, name) for name, png in previews.items()})

    return _figures


def build_defs(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dg.Definitions:
    """The models group as planned: the indices when their indicators exist, the count models (and their figures)
    when some covariate does; an empty group otherwise."""
    assets = [build_indices_asset(plan)] if plan.indices.on else []
    if plan.count_models.on:
        assets += [build_models_asset(cfg, plan), build_figures_asset(plan.indices.on)]
    return dg.Definitions(assets=assets)
