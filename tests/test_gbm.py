"""GBM with explanations on simulated counts with known effects: recovery, SHAP identities, CV, determinism, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from epiatlas.errors import ModelError
from epiatlas.models.explain import mean_abs_shap, partial_dependence, region_drivers, shap_table, tree_shap
from epiatlas.models.folds import grouped_folds
from epiatlas.models.gbm import GbmSettings, fit_gbm, poisson_deviance_sum

COVARIATES = ["strong", "negative", "noise"]
EFFECTS = {"strong": 0.5, "negative": -0.3, "noise": 0.0}
FAST = GbmSettings(learning_rate=0.1, max_rounds=400, early_stopping_rounds=20, num_leaves=7, seed=3)


def simulate(seed: int, effects: dict[str, float], n_regions: int = 200, periods: int = 3) -> pd.DataFrame:
    """Poisson counts with log(mu) = log(E) + 0.1 + sum(effect * x), x standard normal, E in [20, 200]."""
    rng = np.random.default_rng(seed)
    n = n_regions * periods
    frame = pd.DataFrame(
        {
            "region_id": np.repeat([f"R{i:04d}" for i in range(n_regions)], periods),
            "period": np.tile(2015 + np.arange(periods), n_regions),
        }
    )
    for name in effects:
        frame[name] = rng.normal(size=n)
    frame["expected_cases"] = rng.uniform(20.0, 200.0, n)
    eta = 0.1 + sum(beta * frame[name] for name, beta in effects.items())
    frame["cases"] = rng.poisson(frame["expected_cases"] * np.exp(eta))
    return frame


@pytest.fixture(scope="module")
def signal() -> pd.DataFrame:
    return simulate(1, EFFECTS)


@pytest.fixture(scope="module")
def fitted(signal: pd.DataFrame):
    return fit_gbm(signal, COVARIATES, settings=FAST)


def test_pdp_direction_matches_planted_signs_and_strong_rate_ratio_near_truth(fitted) -> None:
    pdp = partial_dependence(fitted, grid_points=15, glm_per_unit={"strong": EFFECTS["strong"]})
    for feature, beta in EFFECTS.items():
        curve = pdp[pdp["feature"] == feature]
        slope = np.polyfit(curve["grid_value"], np.log(curve["rate_ratio"]), 1)[0]
        if beta:
            assert np.sign(slope) == np.sign(beta)
            assert np.corrcoef(curve["grid_value"], np.log(curve["rate_ratio"]))[0, 1] * np.sign(beta) > 0.95
        else:
            assert abs(slope) < 0.05
    strong = pdp[pdp["feature"] == "strong"]
    truth = np.exp(EFFECTS["strong"] * (strong["grid_value"] - strong["reference_value"]))
    assert np.allclose(strong["glm_rate_ratio"], truth, rtol=1e-12)
    assert np.abs(np.log(strong["rate_ratio"]) - np.log(truth)).max() < 0.12
    assert abs(np.polyfit(strong["grid_value"], np.log(strong["rate_ratio"]), 1)[0] - EFFECTS["strong"]) < 0.08
    assert pdp.loc[pdp["feature"] != "strong", "glm_rate_ratio"].isna().all()
    ice = pdp[["ice_p10", "ice_p50", "ice_p90"]].to_numpy()
    assert (np.diff(ice, axis=1) >= 0).all()


def test_pdp_reference_is_the_median_and_grid_spans_5_to_95_percent(fitted, signal) -> None:
    pdp = partial_dependence(fitted, grid_points=10, max_rows=150)
    for feature in COVARIATES:
        curve = pdp[pdp["feature"] == feature]
        assert len(curve) == 10
        assert curve["reference_value"].iloc[0] == pytest.approx(signal[feature].median())
        assert curve["grid_value"].iloc[[0, -1]].tolist() == pytest.approx(signal[feature].quantile([0.05, 0.95]))


def test_shap_additivity_on_fit_and_new_rows(fitted, signal) -> None:
    shap = tree_shap(fitted)
    log_ratio = np.log(fitted.predict() / signal["expected_cases"].to_numpy())
    assert np.abs(shap.base_value + shap.values.sum(axis=1) - log_ratio).max() < 1e-6
    fresh = simulate(9, EFFECTS, n_regions=20)
    fresh_shap = tree_shap(fitted, fresh)
    fresh_ratio = np.log(fitted.predict(fresh) / fresh["expected_cases"].to_numpy())
    assert np.abs(fresh_shap.base_value + fresh_shap.values.sum(axis=1) - fresh_ratio).max() < 1e-6


def test_tree_explainer_equals_pred_contrib(fitted) -> None:
    ours = tree_shap(fitted, method="pred_contrib")
    theirs = tree_shap(fitted, method="tree_explainer")
    assert np.abs(ours.values - theirs.values).max() < 1e-9
    assert ours.base_value == pytest.approx(theirs.base_value, abs=1e-9)


def test_shap_tables_have_the_published_shape_and_true_top_drivers(fitted, signal) -> None:
    shap = tree_shap(fitted)
    table = shap_table(shap)
    assert list(table.columns) == ["region_id", "period", "outcome", "feature", "feature_value", "shap_value"]
    assert len(table) == len(signal) * len(COVARIATES)
    row = table[(table["region_id"] == "R0007") & (table["period"] == 2016)].set_index("feature")
    source = signal[(signal["region_id"] == "R0007") & (signal["period"] == 2016)].iloc[0]
    assert row.loc["negative", "feature_value"] == source["negative"]

    drivers = region_drivers(shap)
    assert list(drivers.columns) == [
        "region_id", "period", "outcome", "rank", "feature", "feature_value", "shap_value",
    ]  # fmt: skip
    brute = (
        table.assign(size=table["shap_value"].abs())
        .sort_values(["region_id", "period", "size"], ascending=[True, True, False], kind="stable")
        .groupby(["region_id", "period"], sort=False)
        .head(3)
    )
    assert drivers["feature"].tolist() == brute["feature"].tolist()
    assert drivers["shap_value"].tolist() == brute["shap_value"].tolist()
    assert drivers["rank"].tolist() == [1, 2, 3] * len(signal)
    assert mean_abs_shap(shap)["feature"].tolist() == ["strong", "negative", "noise"]


def test_cv_deviance_beats_constant_rate_on_signal_and_matches_a_manual_refit(fitted, signal) -> None:
    import lightgbm as lgb

    cv = fitted.cv_table
    assert cv["deviance"].sum() < 0.5 * cv["null_deviance"].sum()
    assert fitted.cv_deviance == pytest.approx(cv["deviance"].sum() / len(signal), rel=1e-12)
    assert fitted.cv_deviance == pytest.approx(fitted.cv_path[fitted.n_rounds - 1], rel=1e-12)
    y, e = signal["cases"].to_numpy(float), signal["expected_cases"].to_numpy()
    folds = grouped_folds(signal["region_id"], FAST.cv_folds, FAST.seed)
    assert (fitted.folds == folds).all()
    assert cv["n"].tolist() == np.bincount(folds).tolist()
    for k in range(FAST.cv_folds):
        test = folds == k
        ratio = y[~test].sum() / e[~test].sum()
        assert cv.loc[k, "null_deviance"] == pytest.approx(deviance_by_hand(y[test], e[test] * ratio), rel=1e-12)
    test = folds == 0
    x = signal[COVARIATES].to_numpy()
    offset = np.log(e) + np.log(y[~test].sum() / e[~test].sum())
    booster = lgb.train(
        FAST.lightgbm_params(),
        lgb.Dataset(x[~test], y[~test], init_score=offset[~test]),
        num_boost_round=fitted.n_rounds,
    )
    mu = np.exp(offset[test] + booster.predict(x[test], raw_score=True))
    assert cv.loc[0, "deviance"] == pytest.approx(deviance_by_hand(y[test], mu), rel=1e-10)


def deviance_by_hand(y: np.ndarray, mu: np.ndarray) -> float:
    """Sum of 2 (y log(y/mu) - (y - mu)), with 0 log 0 = 0."""
    positive = y > 0
    return float(2 * ((y[positive] * np.log(y[positive] / mu[positive])).sum() - (y - mu).sum()))


def test_noise_stops_early_and_is_no_better_than_constant_rate() -> None:
    noise = simulate(2, {"a": 0.0, "b": 0.0, "c": 0.0})
    result = fit_gbm(noise, ["a", "b", "c"], settings=FAST)
    assert result.n_rounds < FAST.max_rounds
    assert len(result.cv_path) == result.n_rounds + FAST.early_stopping_rounds
    assert result.cv_path[result.n_rounds - 1] == result.cv_path.min()
    null = result.cv_table["null_deviance"].sum() / len(noise)
    assert result.cv_deviance == pytest.approx(null, rel=0.03)


def test_refit_gives_identical_model_and_tables(signal) -> None:
    first, second = (fit_gbm(signal, COVARIATES, settings=FAST) for _ in range(2))
    assert first.booster.model_to_string() == second.booster.model_to_string()
    pd.testing.assert_frame_equal(first.cv_table, second.cv_table, check_exact=True)
    pd.testing.assert_frame_equal(shap_table(tree_shap(first)), shap_table(tree_shap(second)), check_exact=True)
    pd.testing.assert_frame_equal(partial_dependence(first), partial_dependence(second), check_exact=True)


def test_given_folds_are_used_and_incomplete_rows_dropped_and_counted(signal) -> None:
    frame = signal.copy()
    frame.loc[[0, 5, 9], "noise"] = np.nan
    parent = frame["region_id"].str[:4]  # spatial blocks of 10 regions
    folds = grouped_folds(parent, 4, 0)
    result = fit_gbm(frame, COVARIATES, folds=folds, settings=FAST)
    assert result.n_dropped == 3 and len(result.data) == len(frame) - 3
    kept = np.ones(len(frame), bool)
    kept[[0, 5, 9]] = False
    assert (result.folds == folds[kept]).all()
    assert len(result.cv_table) == 4
    unassigned = folds.astype(float)
    unassigned[1] = np.nan
    with pytest.raises(ModelError, match=r"1 complete-case row\(s\) have no CV fold"):
        fit_gbm(frame, COVARIATES, folds=unassigned, settings=FAST)


def test_poisson_deviance_identities() -> None:
    y = np.array([0.0, 3.0, 10.0])
    assert poisson_deviance_sum(y, y + (y == 0)) == pytest.approx(2.0)  # only y=0, mu=1 contributes 2*mu
    assert poisson_deviance_sum(np.array([2.0]), np.array([1.0])) == pytest.approx(2 * (2 * np.log(2) - 1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f[f["region_id"] < "R0003"], "3 distinct regions"),
        (lambda f: f.assign(cases=0), "zero in every row"),
        (lambda f: f.assign(expected_cases=f["expected_cases"].where(f.index != 4, 0.0)), "'expected_cases' must be"),
        (lambda f: f.assign(cases=f["cases"].where(f.index != 2, -1)), "region_id R0000"),
        (lambda f: f.assign(strong=np.nan), "no complete cases"),
        (lambda f: f.assign(strong="high"), "not numeric"),
    ],
)
def test_degenerate_input_raises_model_error(signal, change, message) -> None:
    with pytest.raises(ModelError, match=message):
        fit_gbm(change(signal), COVARIATES, settings=FAST)


def test_unknown_covariate_and_glm_effect_raise_model_error(signal, fitted) -> None:
    with pytest.raises(ModelError, match=r"unknown column\(s\) \['pm25'\]"):
        fit_gbm(signal, ["strong", "pm25"], settings=FAST)
    with pytest.raises(ModelError, match=r"lack the column\(s\) \['negative'\]"):
        tree_shap(fitted, signal.drop(columns="negative"))
    with pytest.raises(ModelError, match="GLM effects given for \\['pm25'\\]"):
        partial_dependence(fitted, glm_per_unit={"pm25": 0.1})


def test_settings_are_strict() -> None:
    with pytest.raises(ValidationError):
        GbmSettings(num_leaf=7)
    with pytest.raises(ValidationError):
        GbmSettings(num_leaves="7")
    with pytest.raises(ValidationError):
        GbmSettings(cv_folds=1)


def test_same_folds_and_deviance_scale_as_the_glm(signal, fitted) -> None:
    from epiatlas.models.glm import fit_count_model
    from epiatlas.models.settings import ModelSettings

    glm = fit_count_model(
        signal,
        ModelSettings(covariates=COVARIATES, family="poisson", penalty=False, period_effects=False, bootstrap=0,
                      seed=FAST.seed, cv_folds=FAST.cv_folds),
    )  # fmt: skip
    ours = signal[["region_id", "period"]].assign(fold=fitted.folds)
    both = ours.merge(glm.folds, on=["region_id", "period"], suffixes=("", "_glm"), validate="1:1")
    assert len(both) == len(signal) and (both["fold"] == both["fold_glm"]).all()
    glm_by_fold = glm.cv_deviance_by_fold.set_index("fold")
    assert (glm_by_fold["n"] == fitted.cv_table.set_index("fold")["n"]).all()
    glm_cv = glm_by_fold["poisson_deviance"].sum() / len(signal)
    assert glm_cv == pytest.approx(float(glm.fit["cv_deviance"].iloc[0]), rel=1e-12)
    # the GLM is the true model here: it beats the GBM, and both beat the constant rate by far
    null = fitted.cv_table["null_deviance"].sum() / len(signal)
    assert glm_cv < fitted.cv_deviance < null / 10
