"""The analysis plan: which optional analyses a config runs (and why not), the problems of explicit requests, and
covariates screened before any solver sees them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from epiatlas.analyses import analysis_plan
from epiatlas.cli.main import app
from epiatlas.config import load_config
from epiatlas.errors import ConfigError, ModelError
from epiatlas.models.analysis import default_covariates, fit_burden_models
from epiatlas.models.config import ModelsConfig
from epiatlas.models.screening import screen_covariates
from epiatlas.models.settings import ModelSettings
from epiatlas.preflight import preflight
from orchestration.definitions import asset_keys, build_definitions
from tests.preflight_fixtures import tiny_project

NINE = ["illiteracy", "no_primary_school", "no_drainage_toilet", "no_electricity", "no_piped_water", "overcrowding",
        "dirt_floor", "small_localities", "low_income"]  # fmt: skip


def _indicators(root: Path, columns: list[str]) -> dict[str, object]:
    """An indicator file holding `columns` for the tiny project's two regions and years."""
    rows = [{"region_id": r, "year": y, **{c: 10.0 + i for i, c in enumerate(columns)}}
            for r in ("R1", "R2") for y in (2020, 2021)]  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "indicators.csv", index=False)
    return {"path": "indicators.csv"}


def _covariates(root: Path) -> dict[str, object]:
    pd.DataFrame({"region_id": ["R1", "R2"], "gdp": [1.0, 2.0]}).to_csv(root / "gdp.csv", index=False)
    return {"gdp": {"path": "gdp.csv", "variables": {"gdp": {"unit": "MXN", "description": "GDP per person."}}}}


def _keys(config: Path) -> set[str]:
    return {k.to_user_string() for k in asset_keys(build_definitions(config))}


def test_counts_alone_run_the_outcomes_without_any_analysis(tmp_path: Path) -> None:
    config = tiny_project(tmp_path)
    plan = analysis_plan(load_config(config))
    assert [a.on for a in plan.analyses] == [False, False, False, False]
    assert "no covariate" in plan.count_models.reason and not plan.problems
    keys = _keys(config)
    assert {"region_period_outcomes", "published_outcomes", "region_profile", "catalog"} <= keys
    assert not keys & {"socioeconomic_indices", "glm_coefficients", "model_figures", "cxr_images"}
    jobs = {j.name for j in build_definitions(config).jobs}
    assert "models_job" not in jobs and "imaging_job" not in jobs and "all_assets_job" in jobs


def test_nine_indicators_are_the_default_set(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, sources_socioeconomic_indicators=_indicators(tmp_path, NINE))
    plan = analysis_plan(load_config(config))
    assert plan.indices.on and plan.indicators == tuple(NINE) and plan.indicator_tables == ("socioeconomic_indicators",)
    assert plan.count_models.on and "socioeconomic indices" in plan.count_models.reason
    assert "socioeconomic_indices" in _keys(config)


def test_two_indicators_are_not_enough_and_say_so(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, sources_socioeconomic_indicators=_indicators(tmp_path, NINE[:2]))
    plan = analysis_plan(load_config(config))
    assert not plan.indices.on and "at least 3" in plan.indices.reason and not plan.problems
    assert "socioeconomic_indices" not in _keys(config)


def test_user_covariates_alone_run_the_count_models(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, covariates=_covariates(tmp_path))
    plan = analysis_plan(load_config(config))
    assert not plan.indices.on and plan.count_models.on and "covariates.gdp (gdp)" in plan.count_models.reason
    assert not plan.severity.on and "neither deaths nor severe_cases" in plan.severity.reason
    assert {"glm_coefficients", "covariates_gdp"} <= _keys(config)


def test_every_analysis_can_be_switched_off(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, sources_socioeconomic_indicators=_indicators(tmp_path, NINE),
                          covariates=_covariates(tmp_path), indices={"enabled": False}, models={"enabled": False})
    plan = analysis_plan(load_config(config))
    assert "indices.enabled is false" in plan.indices.reason and "models.enabled is false" in plan.count_models.reason
    assert not _keys(config) & {"socioeconomic_indices", "glm_coefficients"}


@pytest.mark.parametrize(
    ("overrides", "where", "words"),
    [
        ({"indices": {"indicators": ["gdp", "nowhere", "elsewhere"]}}, "indices.indicators",
         "names ['nowhere', 'elsewhere']"),
        ({"models": {"covariates": ["pm25"]}}, "models.covariates", "no pollutant sources"),
        ({"models": {"covariates": ["index_f1"]}}, "models.covariates", "factor indices are off"),
        ({"models": {"covariates": ["gpd"]}}, "models.covariates", "gpd is not a column of any configured input"),
        ({"models": {"glm": {"severity_outcome": "deaths"}}}, "models.glm.severity_outcome", "does not provide"),
        ({"models": {"glm": {"offset": "population"}}, "sources_hospitalization_counts": {"path": "data/e.csv"}},
         "models.glm.offset", "no population column"),
        ({"reports": {"level": "parent"}}, "reports.level", "sources.regions maps no parent_id"),
    ],
    ids=["unknown-indicator", "pollutant-without-stations", "index-without-indices", "typo", "no-deaths",
         "population-offset-without-population", "parent-reports-without-parents"],
)
def test_explicit_requests_the_inputs_cannot_meet_are_preflight_problems(
    tmp_path: Path, overrides: dict[str, object], where: str, words: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "e.csv").write_text("region_id,period,cases,expected_cases\nR1,2020,3,2.5\n", encoding="utf-8")
    config = tiny_project(tmp_path, covariates=_covariates(tmp_path), **overrides)
    result = preflight(load_config(config))
    found = [str(p) for p in result.problems if p.where == where]
    assert found and words in found[0], result.problems
    assert "np." not in found[0] and "pydantic" not in found[0]


def test_check_config_prints_the_plan_and_names_the_key(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, models={"covariates": ["pm25"]})
    result = CliRunner().invoke(app, ["check-config", "--config", str(config)])
    assert result.exit_code == 2
    assert "count_models: on (models.covariates: pm25)" in result.output
    assert "models.covariates: pm25 is a pollutant, but no pollutant sources are configured" in result.output


def test_bad_glm_options_read_as_keys_not_a_pydantic_dump(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, models={"glm": {"family": "gaussian", "cv_folds": 1}})
    with pytest.raises(ConfigError) as info:
        load_config(config)
    text = str(info.value)
    assert "models.glm.family" in text and "models.glm.cv_folds" in text
    assert "errors.pydantic.dev" not in text and "validation error for" not in text


def _frame(n_regions: int = 40, periods: tuple[int, ...] = (2020, 2021), seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_regions):
        x = rng.normal()
        for p in periods:
            expected = float(rng.uniform(5, 30))
            rows.append({"region_id": f"r{r:02d}", "parent_id": f"p{r % 4}", "period": p, "expected_cases": expected,
                         "cases": int(rng.poisson(expected * np.exp(0.3 * x))), "deaths": None, "severe_cases": None,
                         "population": 1000, "x": x, "x_twice": 2 * x + 1, "flat": 7.0, "empty": np.nan,
                         "by_period": float(p - 2020)})  # fmt: skip
    return pd.DataFrame(rows)


def test_constant_empty_and_collinear_covariates_are_dropped_with_a_reason() -> None:
    frame = _frame()
    screening = screen_covariates(frame, ["x", "x_twice", "flat", "empty", "by_period"],
                                  ModelSettings(covariates=["x"]))
    assert screening.kept == ["x"]
    assert screening.dropped["empty"] == "no values in any region-period"
    assert screening.dropped["flat"].startswith("constant over the 80 region-periods")
    assert "collinear with ['intercept', 'x']" in screening.dropped["x_twice"]
    assert "collinear" in screening.dropped["by_period"] and "period" in screening.dropped["by_period"]


def test_a_fit_with_degenerate_covariates_records_them_instead_of_failing() -> None:
    frame = _frame()
    config = ModelsConfig.model_validate({"covariates": ["x", "flat", "empty"], "glm": {"bootstrap": 0, "n_alphas": 5,
                                          "moran_permutations": 19}, "gbm": {"max_rounds": 20}, "pdp_grid_points": 3})
    models = fit_burden_models(frame, config)
    fit = models.tables["glm_fit"].iloc[0]
    assert models.covariates == ["x"] and "flat: constant" in fit["dropped_covariates"]
    assert "empty: no values" in fit["dropped_covariates"]
    assert any("covariate flat dropped" in n for n in models.notes)
    assert models.severity is None  # no deaths in the input


def test_only_degenerate_covariates_is_a_clear_model_error() -> None:
    with pytest.raises(ModelError, match=r"no covariate can enter the count models \(flat: constant"):
        screen_covariates(_frame(), ["flat"], ModelSettings(covariates=["flat"]))


def test_one_period_and_fewer_regions_than_folds_fit_with_a_note() -> None:
    frame = _frame(n_regions=3, periods=(2022,))
    config = ModelsConfig.model_validate({"covariates": ["x"], "glm": {"bootstrap": 0, "n_alphas": 5,
                                          "moran_permutations": 19}, "gbm": {"max_rounds": 10}, "pdp_grid_points": 3})
    models = fit_burden_models(frame, config)
    terms = models.tables["glm_coefficients"]["term"].tolist()
    assert terms == ["intercept", "x"]  # one period: no period dummies
    assert any("cv_folds 5 lowered to 3" in n for n in models.notes)
    assert models.tables["model_cv_comparison"]["fold"].nunique() == 3


def test_without_pm25_every_measured_pollutant_is_a_default_covariate() -> None:
    frame = _frame().assign(no2=1.0, o3=2.0)
    assert default_covariates(frame.drop(columns=["x_twice", "flat", "empty", "by_period"])) == ["x", "no2", "o3"]



def test_stored_fits_carry_no_rows_of_the_private_data() -> None:
    import pickle

    frame = _frame()
    config = ModelsConfig.model_validate({"covariates": ["x"], "glm": {"bootstrap": 0, "n_alphas": 5,
                                          "moran_permutations": 19}, "gbm": {"max_rounds": 10}, "pdp_grid_points": 3})
    models = fit_burden_models(frame, config)
    state = pickle.loads(pickle.dumps(models.fitted_state()))
    stored = state["glm_cases"]
    n = len(models.cases.refit.model.endog)

    def row_arrays(obj: object) -> list[str]:
        return [k for k, v in vars(obj).items() if isinstance(v, np.ndarray | pd.Series | pd.DataFrame) and len(v) == n]

    assert row_arrays(stored) == [] and row_arrays(stored.model) == [] and row_arrays(stored.model.data) == []
    new = np.ones((1, len(stored.params)))
    linear = stored.model.predict(stored.params.to_numpy(), new, offset=np.zeros(1), which="linear")
    assert np.allclose(linear, stored.params.sum())  # usable on new rows
    assert models.cases.refit.model.endog is not None  # the in-memory fit keeps its data


def test_a_launchpad_config_needing_another_graph_is_refused(tmp_path: Path) -> None:
    from orchestration.resources import EpiatlasResource

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    graph = tiny_project(tmp_path / "a")
    same = tiny_project(tmp_path / "b", outcomes={"suppression_threshold": 3})
    other = tiny_project(tmp_path / "c", covariates=_covariates(tmp_path / "c"))
    assert EpiatlasResource(config_path=str(same), graph_config_path=str(graph)).settings().config_path == same
    with pytest.raises(ConfigError, match=r"covariates: \['gdp'\] \(the graph has \[\]\).*count_models on"):
        EpiatlasResource(config_path=str(other), graph_config_path=str(graph)).settings()


@pytest.mark.slow
def test_two_regions_and_one_covariate_run_to_a_published_catalog(tmp_path: Path) -> None:
    """Data shaped nothing like the demo: 2 regions, 2 periods, no names or parents, one covariate the elastic net
    drops. CV folds are lowered to 2, Moran's I is left NULL, and the figures skip the empty forest plot."""
    from epiatlas.publish import warehouse_for
    from orchestration.runner import run_pipeline

    config = tiny_project(tmp_path, covariates=_covariates(tmp_path), reports={"pdf": False})
    summary, published = run_pipeline(config, in_process=True)
    assert summary.failed_checks == []
    assert {"glm_fit", "model_figures", "region_profile"} <= set(published.rows)
    with warehouse_for(load_config(config)).read_catalog() as con:
        n, moran = con.execute("SELECT n, moran_i FROM glm_fit WHERE outcome = 'cases'").fetchone()
        names = {r[0] for r in con.execute("SELECT name FROM model_figures").fetchall()}
    assert n == 4 and moran is None
    assert "map_shr" in names


def test_an_unidentifiable_cross_validation_fold_is_a_model_error_not_a_solver_crash() -> None:
    frame = _frame(n_regions=2)
    config = ModelsConfig.model_validate({"covariates": ["x"], "glm": {"penalty": False, "bootstrap": 0,
                                          "moran_permutations": 19}, "gbm": {"max_rounds": 10}, "pdp_grid_points": 3})
    with pytest.raises(ModelError, match=r"cross-validation fold 1 of 2: the 2 training rows \(1 CV groups\)"):
        fit_burden_models(frame, config)


def test_undated_counts_over_several_periods_are_a_preflight_problem(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "u.csv").write_text("region_id,cases,expected_cases\nR1,3,2.5\nR2,4,4.5\n", encoding="utf-8")
    config = tiny_project(tmp_path, sources_hospitalization_counts={"path": "data/u.csv"})
    [problem] = preflight(load_config(config)).problems
    assert problem.where == "sources.hospitalization_counts" and "periods [2020] would show zero cases" in problem.message
    one = tiny_project(tmp_path, sources_hospitalization_counts={"path": "data/u.csv"}, periods={"start": 2021, "end": 2021})
    assert preflight(load_config(one)).problems == ()


@pytest.mark.slow
def test_deaths_and_expected_counts_with_boundaries_only_publish_with_their_quarantine(tmp_path: Path) -> None:
    """The issue's second shape: aggregated deaths + expected counts per area, boundaries only. No analysis can
    run, the outcomes publish, and the bad row is in the quarantine (no run used to finish to show it)."""
    from epiatlas.publish import warehouse_for
    from orchestration.runner import run_pipeline

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text(
        "region_id,period,cases,deaths,expected_cases\nR1,2020,10,2,8.5\nR2,2020,20,1,21.0\nR1,2021,12,0,9.0\n"
        "R2,2021,18,3,19.5\nR9,2021,4,0,3.0\n", encoding="utf-8")  # R9: no such region
    config = tiny_project(tmp_path, sources_hospitalization_counts={"path": "data/d.csv"}, reports={"pdf": False},
                          quality={"max_reject_share": 0.25})  # 1 of 5 rows is bad
    summary, published = run_pipeline(config, in_process=True)
    assert summary.failed_checks == []
    assert {"published_outcomes", "region_profile", "quarantine_summary"} <= set(published.rows)
    assert not set(published.rows) & {"glm_fit", "socioeconomic_indices"}
    with warehouse_for(load_config(config)).read_catalog() as con:
        # deaths of 1-4 are blanked, the true zero stays
        assert con.execute("SELECT count(deaths), max(deaths) FROM published_outcomes").fetchone() == (1, 0)
        assert con.execute("SELECT sum(rows) FROM quarantine_summary WHERE action = 'rejected'").fetchone()[0] == 1
        analyses = con.execute("SELECT analyses FROM catalog_info").fetchone()[0]
    assert "count_models: off (no covariate" in analyses
