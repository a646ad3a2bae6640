"""CXR class shares as model covariates: known effect recovered, off by default, validated, end to end on the demo."""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from epiatlas.analyses import analysis_plan
from epiatlas.config import EpiatlasConfig, dump_config, load_config
from epiatlas.errors import ConfigError, ModelError
from epiatlas.models.analysis import fit_burden_models
from epiatlas.models.config import ModelsConfig
from epiatlas.models.frame import imaging_columns, imaging_coverage, model_frame
from epiatlas.publish import warehouse_for
from orchestration.defs import models as models_defs
from orchestration.jobs import ALL_ASSETS_JOB

BETA = 1.5  # planted log rate ratio per unit of share_pneumonia
FAST = {"glm": {"bootstrap": 0, "moran_permutations": 19, "n_alphas": 10}, "gbm": {"max_rounds": 60},
        "pdp_grid_points": 5}  # fmt: skip


def _world(seed: int = 11) -> dict[str, pd.DataFrame]:
    """Outcomes, regions and a published imaging summary: 240 regions x 3 years, images in the first 200 regions.

    The case rate is exp(BETA x share_pneumonia + 0.3 x index_a) times the expected count; every tenth imaged
    region-period has too few images and is suppressed (shares NULL, as cxr_region_summary publishes it).
    """
    rng = np.random.default_rng(seed)
    ids = range(240)
    regions = pd.DataFrame({"region_id": [f"r{i:03d}" for i in ids], "parent_id": [f"p{i % 8}" for i in ids]})
    cells = regions[["region_id"]].merge(pd.DataFrame({"period": [2020, 2021, 2022]}), how="cross")
    n = len(cells)
    shares = rng.dirichlet([6.0, 1.5, 1.5, 1.0], size=n)  # normal, bacterial, viral, covid19
    pneumonia = shares[:, 1:].sum(axis=1)
    index_a = rng.normal(size=n)
    expected = rng.uniform(20, 80, size=n)
    cases = rng.poisson(expected * np.exp(BETA * pneumonia + 0.3 * index_a))
    outcomes = cells.assign(cases=cases, deaths=rng.binomial(cases, 0.1), severe_cases=0, population=50_000,
                            expected_cases=expected)  # fmt: skip
    indices = cells.assign(index="a", score=index_a)
    imaged = cells["region_id"].str[1:].astype(int) < 200
    suppressed = imaged & (np.arange(n) % 10 == 3)
    classes = ["normal", "bacterial", "viral", "covid19"]
    summary = cells.assign(
        n_images=np.where(suppressed, 2, 30), suppressed=suppressed,
        **{f"share_{c}": shares[:, i] for i, c in enumerate(classes)},
        **{f"mean_p_{c}": 0.05 + 0.8 * shares[:, i] for i, c in enumerate(classes)},
    )[imaged.to_numpy()]  # fmt: skip
    figures = ["n_images", *(f"{kind}_{c}" for kind in ("share", "mean_p") for c in classes)]
    summary.loc[summary["suppressed"], figures] = np.nan
    return {"outcomes": outcomes, "regions": regions, "indices": indices, "summary": summary}


@pytest.fixture(scope="module")
def world() -> dict:
    """The synthetic world's model frame (indices and the pneumonia share joined) and the models fit on it."""
    tables = _world()
    config = ModelsConfig.model_validate({**FAST, "imaging_covariates": ["share_pneumonia"], "severity": False})
    imaging = imaging_columns(tables["summary"], ["share_pneumonia"])
    frame = model_frame(tables["outcomes"], tables["regions"], indices=tables["indices"], imaging=imaging)
    return {**tables, "frame": frame, "models": fit_burden_models(frame, config)}


# --- (a) known truth ----------------------------------------------------------------------------


def test_planted_pneumonia_effect_is_inside_the_confidence_interval(world: dict) -> None:
    coefficients = world["models"].tables["glm_coefficients"].set_index("term")
    row = coefficients.loc["share_pneumonia"]
    assert row["selected"]
    low, high = (math.log(row[c]) / row["covariate_sd"] for c in ("ci_low", "ci_high"))  # per unit of the share
    assert low < BETA < high, (low, row["estimate_per_unit"], high)
    assert high - low < 1.0, "the interval is narrow enough that a wrong effect would fall outside it"


def test_fit_covers_only_region_periods_with_a_published_summary(world: dict) -> None:
    summary = world["summary"]
    published = int((~summary["suppressed"]).sum())
    without = len(world["frame"]) - published
    assert imaging_coverage(world["frame"], summary) == {
        "region_periods_with_imaging": published,
        "region_periods_imaging_suppressed": int(summary["suppressed"].sum()),
        "region_periods_without_images": len(world["frame"]) - len(summary),
    }
    fit = world["models"].tables["glm_fit"].iloc[0]
    assert (fit["n"], fit["n_dropped"], fit["dropped_reasons"]) == (published, without,
                                                                     f"missing share_pneumonia: {without}")
    coefficients = world["models"].tables["glm_coefficients"]
    assert (coefficients["n"] == published).all()
    assert (coefficients["dropped_reasons"] == f"missing share_pneumonia: {without}").all()


def test_shap_and_partial_dependence_explain_the_imaging_covariate(world: dict) -> None:
    models = world["models"]
    shap = models.tables["gbm_shap"]
    assert "share_pneumonia" in set(shap["feature"])
    pdp = models.tables["gbm_partial_dependence"]
    curve = pdp[pdp["feature"] == "share_pneumonia"].sort_values("grid_value")
    assert len(curve) > 1
    assert curve["rate_ratio"].iloc[-1] > curve["rate_ratio"].iloc[0]  # the trees found the planted rise too


# --- (b) off by default --------------------------------------------------------------------------


def test_default_config_fits_the_same_covariates_even_when_the_frame_has_shares(world: dict) -> None:
    assert ModelsConfig().imaging_covariates == []
    frame = world["frame"].assign(share_bacterial=0.2)
    config = ModelsConfig.model_validate({**FAST, "severity": False})
    assert fit_burden_models(frame.dropna(subset=["share_pneumonia"]), config).covariates == ["index_a"]


def _count_models_deps(cfg: EpiatlasConfig) -> set[str]:
    defs = models_defs.build_defs(cfg, analysis_plan(cfg))
    (count_models,) = [a for a in defs.assets if dg.AssetKey("glm_fit") in a.keys]
    return {k.to_user_string() for k in count_models.dependency_keys}


def test_imaging_summary_is_an_input_of_count_models_only_when_chosen(small_demo: Path) -> None:
    cfg = load_config(small_demo)
    assert "cxr_region_summary" not in _count_models_deps(cfg)
    chosen = cfg.model_copy(update={"models": ModelsConfig(imaging_covariates=["share_pneumonia"])})
    assert "cxr_region_summary" in _count_models_deps(chosen)


# --- (c) validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"imaging_covariates": ["share_fungal"]}, "share_pneumonia"),  # the allowed names are listed
        ({"imaging_covariates": ["share_viral", "share_viral"]}, "twice"),
        ({"imaging_covariates": ["share_normal", "share_pneumonia"]}, "add up to a constant"),
        ({"imaging_covariates": ["mean_p_normal", "mean_p_bacterial", "mean_p_viral", "mean_p_covid19"]}, "drop one"),
        ({"imaging_covariates": ["share_pneumonia", "share_bacterial", "share_viral", "share_covid19"]}, "drop one"),
        ({"covariates": ["pm25", "share_viral"], "imaging_covariates": ["share_viral"]}, "only in models.imaging"),
    ],
)
def test_bad_imaging_covariates_fail_at_the_edge(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelsConfig.model_validate(options)


def test_a_share_the_classifier_never_varies_is_refused_with_the_alternative(world: dict) -> None:
    """A classifier that predicts 'normal' for every image (as the small demo's 3-epoch one does) gives shares of 0."""
    frame = world["frame"].assign(share_bacterial=world["frame"]["share_pneumonia"] * 0)
    with pytest.raises(ModelError, match=r"\['share_bacterial'\].*mean_p_"):
        fit_burden_models(frame, ModelsConfig.model_validate({**FAST, "imaging_covariates": ["share_bacterial"]}))


def test_unknown_imaging_column_is_named_when_the_config_is_read(small_demo: Path, tmp_path: Path) -> None:
    cfg = load_config(small_demo).model_dump(mode="json", exclude_none=True)
    cfg["models"] = {"imaging_covariates": ["share_fungal"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.imaging_covariates.*share_fungal"):
        load_config(tmp_path / "config.yaml")


def test_imaging_covariates_without_an_imaging_section_name_both_settings(small_demo: Path, tmp_path: Path) -> None:
    cfg = load_config(small_demo).model_dump(mode="json", exclude_none=True)
    cfg.pop("imaging")
    cfg["sources"].pop("cxr_manifest")
    cfg["models"] = {"imaging_covariates": ["share_pneumonia"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.imaging_covariates.*imaging: section"):
        load_config(tmp_path / "config.yaml")


# --- (d) the small demo with the option on -------------------------------------------------------


@pytest.mark.slow
def test_small_demo_fits_with_the_pneumonia_probability(small_demo: Path, tmp_path: Path) -> None:
    """Only the assets count_models needs (imaging chain included), in process: the imaging column is a fit term.

    The small demo's 3-epoch classifier predicts 'normal' for every image, so share_pneumonia is 0 everywhere
    (refused, see above); the mean predicted probability of pneumonia still varies between regions.
    """
    from orchestration.definitions import build_definitions

    base = load_config(small_demo)
    cfg = base.model_copy(update={
        "warehouse": base.warehouse.model_copy(update={"root": tmp_path / "wh"}),
        "models": ModelsConfig.model_validate({**FAST, "imaging_covariates": ["mean_p_pneumonia"]}),
    })  # fmt: skip
    dump_config(cfg, tmp_path / "config.yaml")
    defs = build_definitions(tmp_path / "config.yaml")
    graph = defs.resolve_asset_graph()
    needed = dg.AssetSelection.assets("glm_fit").upstream().resolve(graph)
    whole = {k for a in graph.assets_defs if a.keys & needed for k in a.keys}  # multi-assets run whole
    tags = {"dagster/asset_partition_range_start": cfg.periods.keys[0],
            "dagster/asset_partition_range_end": cfg.periods.keys[-1]}  # fmt: skip
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(ALL_ASSETS_JOB).execute_in_process(
            instance=instance, asset_selection=sorted(whole), tags=tags, raise_on_error=False
        )
    assert result.success, [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    failed = [(c.asset_key, c.check_name) for c in result.get_asset_check_evaluations() if not c.passed]
    assert failed == []  # the contract checks of glm_fit and glm_coefficients (n, dropped_reasons) included
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("glm_fit")]
    meta = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
    with warehouse_for(cfg).connect(["glm_coefficients", "glm_fit", "cxr_region_summary"]) as con:
        term = con.execute("SELECT n, dropped_reasons FROM glm_coefficients WHERE outcome = 'cases' "
                           "AND term = 'mean_p_pneumonia'").fetchall()  # fmt: skip
        n_fit = con.execute("SELECT n FROM glm_fit WHERE outcome = 'cases'").fetchone()[0]
        published = con.execute("SELECT count(*) FROM cxr_region_summary WHERE NOT suppressed").fetchone()[0]
    assert len(term) == 1, "share_pneumonia is a row of the coefficient table"
    n, reasons = term[0]
    assert n == n_fit == meta["region_periods_used"] <= meta["region_periods_with_imaging"] == published
    assert "missing mean_p_pneumonia" in reasons and meta["rows_dropped_by_reason"] == reasons
    assert "mean_p_pneumonia" in meta["covariates"]
