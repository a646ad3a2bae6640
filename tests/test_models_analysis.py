"""The whole models step on one frame: tables shaped like their contracts, shared folds, no revealing residuals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from epiatlas.contracts import load_contract
from epiatlas.errors import ModelError
from epiatlas.models.analysis import default_covariates, fit_burden_models
from epiatlas.models.config import ModelsConfig


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n_regions, periods = 120, [2020, 2021, 2022]
    rows = []
    for r in range(n_regions):
        x1, x2, noise = rng.normal(size=3)
        for p in periods:
            expected = float(rng.uniform(5, 40))
            cases = int(rng.poisson(expected * np.exp(0.3 * x1 - 0.2 * x2)))
            deaths = int(rng.binomial(cases, 0.1))
            rows.append(
                {"region_id": f"r{r:03d}", "parent_id": f"p{r % 6}", "period": p, "cases": cases, "deaths": deaths,
                 "severe_cases": deaths, "population": 10_000, "expected_cases": expected,
                 "index_a": x1, "index_b": x2, "pm25": noise + rng.normal(scale=0.1), "index_composite": x1 + x2}
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def config() -> ModelsConfig:
    return ModelsConfig.model_validate(
        {"glm": {"bootstrap": 5, "moran_permutations": 19, "n_alphas": 10}, "gbm": {"max_rounds": 60}, "pdp_grid_points": 5}
    )


def test_default_covariates_leave_out_outcomes_composite_and_other_pollutants(frame: pd.DataFrame) -> None:
    assert default_covariates(frame.assign(no2=1.0, clinics=2.0)) == ["index_a", "index_b", "pm25", "clinics"]


def test_tables_match_their_contracts_and_models_share_folds(frame: pd.DataFrame, config: ModelsConfig) -> None:
    published = frame[["region_id", "period", "cases", "deaths", "severe_cases"]].astype({"cases": "float"}).copy()
    hidden = published["cases"] < 8
    published.loc[hidden, ["cases", "deaths", "severe_cases"]] = np.nan
    models = fit_burden_models(frame, config, published=published)
    for name, table in models.tables.items():
        contract = load_contract(name)
        assert set(contract.column_names) <= set(table.columns), name
    cv = models.tables["model_cv_comparison"]
    assert len(cv) == 5 and (cv["n"] > 0).all()
    assert (cv["glm_deviance"] < cv["offset_only_deviance"]).all()
    predictions = models.tables["model_predictions"].merge(published, on=["region_id", "period"])
    case_rows = predictions[predictions["outcome"] == "cases"]
    assert case_rows.loc[case_rows["cases"].isna(), "residual"].isna().all()
    assert case_rows.loc[case_rows["cases"].notna(), "residual"].notna().all()
    assert set(predictions["model"]) == {"glm", "gbm"}


def test_unknown_covariate_is_named(frame: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match="no_such_column"):
        fit_burden_models(frame, ModelsConfig(covariates=["no_such_column"]))


def test_glm_options_are_validated_at_the_edge() -> None:
    with pytest.raises(ValueError, match="l1_ration"):
        ModelsConfig.model_validate({"glm": {"l1_ration": 0.5}})


def test_single_period_without_pollution_or_indices_on_user_covariates_only(frame: pd.DataFrame) -> None:
    """Region-level input of one period, no exposure, no indices: the user's own covariates carry the model."""
    one = frame[frame["period"] == 2021].drop(columns=["pm25", "index_a", "index_b", "index_composite"])
    one = one.assign(clinics=frame.loc[frame["period"] == 2021, "index_a"].to_numpy() + 0.1)
    config = ModelsConfig.model_validate({"glm": {"bootstrap": 0, "moran_permutations": 19}, "severity": False})
    models = fit_burden_models(one, config)
    assert models.covariates == ["clinics"]
    assert models.severity is None
    coefficients = models.tables["glm_coefficients"].set_index("term")
    assert coefficients.loc["clinics", "rate_ratio"] > 1.0  # simulated from 0.3 x index_a
    assert set(models.tables["model_predictions"]["period"]) == {2021}
