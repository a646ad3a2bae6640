"""Penalized count GLMs against known truth: simulated data with known parameters, statsmodels, the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from epiatlas.errors import ModelError
from epiatlas.models.design import build_design
from epiatlas.models.diagnostics import moran_permutation, variance_inflation
from epiatlas.models.families import Family
from epiatlas.models.folds import grouped_folds
from epiatlas.models.glm import fit_count_model, fit_severity_model
from epiatlas.models.path import alpha_grid, fit_path
from epiatlas.models.settings import ModelSettings

BETA = np.array([0.3, -0.2, 0.15, 0.0, 0.0, 0.0, 0.0, 0.0])  # per original unit
COVARIATES = [f"x{j}" for j in range(len(BETA))]
SIDE = 20  # regions on a SIDE x SIDE lattice


def simulate(
    seed: int,
    n_periods: int = 5,
    beta: np.ndarray = BETA,
    nb_alpha: float | None = None,
    spatial: float = 0.0,
    expected: tuple[float, float] = (20.0, 200.0),
) -> pd.DataFrame:
    """Cases ~ Poisson (or gamma-Poisson) with log mu = log E + 0.1 + x @ beta + spatial pattern, on a lattice."""
    rng = np.random.default_rng(seed)
    n_regions = SIDE * SIDE
    n = n_regions * n_periods
    scale = np.arange(1, len(beta) + 1, dtype=float)
    x = rng.normal(size=(n, len(beta))) * scale + np.arange(len(beta))
    row, col = np.divmod(np.repeat(np.arange(n_regions), n_periods), SIDE)
    pattern = spatial * (np.sin(row / 3.0) + np.cos(col / 3.0))
    expected_cases = rng.uniform(*expected, n)
    mu = expected_cases * np.exp(0.1 + (x - np.arange(len(beta))) @ beta + pattern)
    if nb_alpha is not None:
        mu = mu * rng.gamma(1.0 / nb_alpha, nb_alpha, n)
    frame = pd.DataFrame(x, columns=COVARIATES)
    frame.insert(0, "region_id", np.repeat([f"R{r:03d}" for r in range(n_regions)], n_periods))
    frame.insert(1, "parent_id", np.repeat([f"P{r // 40:02d}" for r in range(n_regions)], n_periods))
    frame.insert(2, "period", np.tile(np.arange(2001, 2001 + n_periods), n_regions))
    frame["cases"] = rng.poisson(mu)
    frame["expected_cases"] = expected_cases
    frame["population"] = np.round(expected_cases * 1000).astype(np.int64)
    return frame


def lattice_weights(n_side: int = SIDE, island: str | None = None) -> object:
    """Queen contiguity of the simulated lattice, ids as in `simulate`; optionally one extra island region."""
    from libpysal.weights import W, lat2W

    lattice = lat2W(n_side, n_side, rook=False)
    ids = [f"R{r:03d}" for r in range(n_side * n_side)]
    neighbors = {ids[k]: [ids[j] for j in lattice.neighbors[k]] for k in range(len(ids))}
    if island:
        neighbors[island] = []
    return W(neighbors, silence_warnings=True)


def raw_exog(frame: pd.DataFrame) -> pd.DataFrame:
    """Constant, raw covariates and period dummies, as a user would fit them in statsmodels."""
    periods = pd.get_dummies(frame["period"], drop_first=True, dtype=float)
    return sm.add_constant(pd.concat([frame[COVARIATES], periods], axis=1))


def settings(**overrides: object) -> ModelSettings:
    """Settings for the simulated covariates."""
    return ModelSettings(covariates=COVARIATES, **overrides)


def truth_in_ci(coefficients: pd.DataFrame, beta: np.ndarray) -> np.ndarray:
    """Whether each covariate's 95% CI (per SD, on the log scale) covers the true per-unit effect times its SD."""
    rows = coefficients.set_index("term").loc[COVARIATES[: len(beta)]]
    truth = beta * rows["covariate_sd"].to_numpy()
    return (np.log(rows["ci_low"].to_numpy()) <= truth) & (truth <= np.log(rows["ci_high"].to_numpy()))


@pytest.fixture(scope="module")
def sparse_fit():
    """Default elastic net with the 1-SE rule on sparse Poisson data."""
    return fit_count_model(simulate(1), settings(one_se_rule=True, bootstrap=30))


def test_unpenalized_poisson_equals_statsmodels_glm_per_original_unit() -> None:
    """Penalty off: per-unit estimates (intercept included) equal statsmodels' GLM on raw covariates (1e-6)."""
    frame = simulate(2)
    result = fit_count_model(frame, settings(penalty=False, family="poisson"))
    exog = raw_exog(frame)
    reference = sm.GLM(frame["cases"], exog, family=sm.families.Poisson(), offset=np.log(frame["expected_cases"])).fit()
    ours = result.coefficients.set_index("term")["estimate_per_unit"]
    np.testing.assert_allclose(ours[["intercept", *COVARIATES]], reference.params[["const", *COVARIATES]], atol=1e-6)
    periods = [2002, 2003, 2004, 2005]
    np.testing.assert_allclose(ours[[f"period_{p}" for p in periods]], reference.params[periods], atol=1e-6)
    fitted = result.predictions.set_index(["region_id", "period"])["fitted"]
    np.testing.assert_allclose(fitted.to_numpy(), reference.fittedvalues.to_numpy(), rtol=1e-6)
    assert result.fit["deviance"].iloc[0] == pytest.approx(reference.deviance, rel=1e-9)
    assert (result.coefficients["inference"] == "unpenalized").all()


def test_negative_binomial_equals_statsmodels_with_its_ml_dispersion() -> None:
    """Family NB, penalty off: alpha is statsmodels' discrete NB2 MLE and the GLM at that alpha matches (1e-6)."""
    frame = simulate(3, nb_alpha=0.25)
    result = fit_count_model(frame, settings(penalty=False, family="negative_binomial"))
    exog = raw_exog(frame)
    offset = np.log(frame["expected_cases"])
    ml = sm.NegativeBinomial(frame["cases"], exog, loglike_method="nb2", offset=offset).fit(disp=0, maxiter=500)
    assert result.family.nb_alpha == pytest.approx(ml.params["alpha"], rel=1e-4)
    family = sm.families.NegativeBinomial(alpha=result.family.nb_alpha)
    glm = sm.GLM(frame["cases"], exog, family=family, offset=offset).fit()
    ours = result.coefficients.set_index("term")["estimate_per_unit"]
    np.testing.assert_allclose(ours[["intercept", *COVARIATES]], glm.params[["const", *COVARIATES]], atol=1e-6)


def test_unpenalized_poisson_rate_ratios_cover_truth() -> None:
    """Every covariate's CI covers its true effect on one simulated data set, and estimates sit near the truth."""
    result = fit_count_model(simulate(4), settings(penalty=False, family="poisson"))
    assert truth_in_ci(result.coefficients, BETA).all()
    per_unit = result.coefficients.set_index("term").loc[COVARIATES, "estimate_per_unit"].to_numpy()
    np.testing.assert_allclose(per_unit, BETA, atol=0.01)


def test_confidence_interval_coverage_is_nominal_over_seeds() -> None:
    """Over 30 seeds x 8 covariates the 95% CIs cover the truth at 95% within three binomial SEs."""
    plain = settings(penalty=False, family="poisson", cv_folds=2)
    covered = np.concatenate(
        [truth_in_ci(fit_count_model(simulate(100 + s, n_periods=2), plain).coefficients, BETA) for s in range(30)]
    )
    tolerance = 3 * np.sqrt(0.95 * 0.05 / covered.size)
    assert abs(covered.mean() - 0.95) <= tolerance, f"coverage {covered.mean():.3f} over {covered.size} intervals"


def test_alpha_grid_starts_where_every_penalized_coefficient_just_vanishes() -> None:
    """At alpha_max (with the offset) all penalized coefficients are zero; a little below, one enters."""
    frame = simulate(5)
    design = build_design(frame, settings(), "cases")
    null = sm.GLM(design.y, np.column_stack([np.ones(len(design.y)), design.X.loc[:, ~design.penalized]]),
                  family=sm.families.Poisson(), offset=design.offset).fit()  # fmt: skip
    grid = alpha_grid(design, Family("poisson"), null.fittedvalues, 0.5, 10, 1e-3)
    rows = np.arange(len(design.y))
    at_max = fit_path(design, Family("poisson"), grid[:1], 0.5, rows)
    below = fit_path(design, Family("poisson"), grid[:1] * 0.95, 0.5, rows)
    assert (at_max.coefs[0, design.penalized] == 0).all()
    assert (below.coefs[0, design.penalized] != 0).sum() == 1


def test_path_meets_the_elastic_net_optimality_conditions() -> None:
    """KKT at every α of the glum path: zero coefficients have |gradient| <= α l1, others gradient = penalty'."""
    frame = simulate(16, n_periods=2)
    design = build_design(frame, settings(), "cases")
    null = sm.GLM(design.y, np.column_stack([np.ones(len(design.y)), design.X.loc[:, ~design.penalized]]),
                  family=sm.families.Poisson(), offset=design.offset).fit()  # fmt: skip
    grid = alpha_grid(design, Family("poisson"), null.fittedvalues, 0.5, 15, 1e-3)
    path = fit_path(design, Family("poisson"), grid, 0.5, np.arange(len(design.y)))
    X = design.X.to_numpy()
    for alpha, b0, b in zip(grid, path.intercepts, path.coefs, strict=True):
        gradient = X.T @ (design.y - np.exp(b0 + X @ b + design.offset)) / len(design.y)
        target = alpha * (0.5 * np.sign(b) + 0.5 * b)
        violation = np.where(b != 0, np.abs(gradient - target), np.maximum(np.abs(gradient) - 0.5 * alpha, 0))
        assert violation[design.penalized].max() <= 1e-4 * alpha
        assert np.abs(gradient[~design.penalized]).max() <= 1e-4 * alpha


def test_cv_picks_an_interior_penalty_on_sparse_effects(sparse_fit) -> None:
    """The CV curve has its chosen penalty strictly inside the grid, below the deviance at both ends."""
    path = sparse_fit.cv_path
    best = int(np.argmin(path["cv_deviance"]))
    assert 0 < best < len(path) - 1
    assert path["cv_deviance"].iloc[best] < path["cv_deviance"].iloc[0]
    assert path["cv_deviance"].iloc[best] < path["cv_deviance"].iloc[-1]
    chosen = int(np.flatnonzero(path["chosen"])[0])
    assert 0 < chosen <= best, "the 1-SE rule picks a penalty at least as large as the minimum's"
    assert sparse_fit.fit["cv_deviance"].iloc[0] == path["cv_deviance"].iloc[chosen]
    assert sparse_fit.alpha == path["alpha"].iloc[chosen]


def test_true_effects_selected_often_noise_rarely(sparse_fit) -> None:
    """Bootstrap selection frequency: the three true effects always, the five noise covariates seldom."""
    coefs = sparse_fit.coefficients.set_index("term").loc[COVARIATES]
    assert (coefs["selection_frequency"].iloc[:3] >= 0.95).all()
    assert coefs["selection_frequency"].iloc[3:].mean() <= 0.2
    assert coefs["selected"].iloc[:3].all()
    assert (coefs["inference"] == "post-selection refit, unpenalized").all()
    assert truth_in_ci(sparse_fit.coefficients, BETA[:3])[: 3].all()


def test_cv_tables_agree_and_use_the_shared_grouped_folds(sparse_fit) -> None:
    """Per-fold deviances add up to the CV curve; folds are `grouped_folds` by region with the settings' seed."""
    folds = sparse_fit.folds
    np.testing.assert_array_equal(folds["fold"], grouped_folds(folds["region_id"], 5, 0))
    assert folds.groupby("region_id")["fold"].nunique().max() == 1
    by_fold = sparse_fit.cv_deviance_by_fold.groupby("alpha_index")[["deviance", "n"]].sum()
    np.testing.assert_allclose(by_fold["deviance"] / by_fold["n"], sparse_fit.cv_path["cv_deviance"], rtol=1e-12)
    chosen = sparse_fit.cv_deviance_by_fold.query("alpha_index == @sparse_fit.cv_path.chosen.idxmax()")
    assert (chosen["poisson_deviance"] > 0).all()
    np.testing.assert_allclose(chosen["deviance"], chosen["poisson_deviance"])  # Poisson family: the same


def test_overdispersed_counts_pick_negative_binomial_and_recover_alpha() -> None:
    """Gamma-Poisson data with alpha 0.25: the test rejects, NB is chosen and alpha's CI covers 0.25."""
    result = fit_count_model(simulate(6, nb_alpha=0.25), settings(penalty=False))
    assert result.family.name == "negative_binomial"
    assert result.overdispersion.p_value < 1e-6
    assert result.nb_dispersion.ci_low <= 0.25 <= result.nb_dispersion.ci_high
    assert result.family.nb_alpha == pytest.approx(0.25, abs=0.03)
    assert result.fit["dispersion"].iloc[0] == pytest.approx(1.0, abs=0.1)
    assert truth_in_ci(result.coefficients, BETA).sum() >= 7


def test_given_family_is_kept_and_the_test_still_reported() -> None:
    """family='poisson' on overdispersed data stays Poisson, with the rejecting test and the excess dispersion shown."""
    result = fit_count_model(simulate(6, nb_alpha=0.25, n_periods=1), settings(penalty=False, family="poisson"))
    assert result.family.name == "poisson" and result.nb_dispersion is None
    assert result.fit["overdispersion_p"].iloc[0] < 1e-6
    assert result.fit["dispersion"].iloc[0] > 3


def test_population_offset_uses_the_population_column() -> None:
    """offset='population' fits log(population) as the offset: same as the expected-offset fit on that column."""
    frame = simulate(17, n_periods=1)
    by_population = fit_count_model(frame, settings(penalty=False, family="poisson", offset="population"))
    reference = fit_count_model(frame.assign(expected_cases=frame["population"].astype(float)),
                                settings(penalty=False, family="poisson"))  # fmt: skip
    pd.testing.assert_frame_equal(by_population.coefficients, reference.coefficients)
    intercept = by_population.coefficients.set_index("term").loc["intercept", "estimate_per_unit"]
    assert intercept == pytest.approx(0.1 - BETA @ np.arange(len(BETA)) - np.log(1000), abs=0.02)  # x_j has mean j


def test_poisson_counts_keep_poisson(sparse_fit) -> None:
    """Equidispersed data: the overdispersion test does not reject and the family stays Poisson."""
    assert sparse_fit.family.name == "poisson"
    assert sparse_fit.overdispersion.p_value > 0.05
    assert sparse_fit.fit["dispersion"].iloc[0] == pytest.approx(1.0, abs=0.1)


def test_binomial_severity_recovers_its_effect() -> None:
    """Deaths ~ Binomial(cases, expit(-2 + 0.4 x0 - 0.25 x1)): odds-ratio CIs cover the truth."""
    frame = simulate(7)
    rng = np.random.default_rng(7)
    frame["deaths"] = rng.binomial(frame["cases"], expit(-2.0 + 0.4 * frame["x0"] - 0.25 * (frame["x1"] - 1) / 2))
    result = fit_severity_model(frame, settings(penalty=False))
    truth = np.array([0.4, -0.125, 0, 0, 0, 0, 0, 0])
    assert result.family.name == "binomial"
    assert truth_in_ci(result.coefficients, truth)[:2].all()
    rows = result.coefficients.set_index("term").loc[COVARIATES]
    z = (rows["estimate_per_unit"] - truth) * rows["covariate_sd"] / rows["std_error"]
    assert (z.abs() < 3.5).all(), "every estimate within 3.5 SE of the truth (8 tests, failure chance < 0.4%)"
    penalized = fit_severity_model(frame, settings(bootstrap=10))
    assert penalized.coefficients.set_index("term").loc[["x0", "x1"], "selected"].all()
    fitted = penalized.predictions["fitted"].to_numpy()
    assert ((fitted >= 0) & (fitted <= frame.sort_values(["region_id", "period"])["cases"].to_numpy())).all()


def test_moran_detects_a_planted_spatial_pattern_and_not_noise() -> None:
    """A smooth log-rate surface left out of the model shows in the residuals' Moran's I; pure noise does not."""
    weights = lattice_weights()
    patterned = fit_count_model(simulate(8, spatial=0.2), settings(penalty=False, family="poisson"), weights)
    noise = fit_count_model(simulate(8), settings(penalty=False, family="poisson"), weights)
    assert patterned.moran.i > 0.3 and patterned.moran.p_value <= 0.002
    assert noise.moran.p_value > 0.05 and abs(noise.moran.i) < 0.1
    assert patterned.fit["moran_p"].iloc[0] == patterned.moran.p_value


def test_moran_value_by_hand_and_islands_left_out() -> None:
    """Path a-b-c-d with values 1..4: I = z.Wz / z.z = 2 / 5 = 0.4 by hand; the island e is counted and left out."""
    from libpysal.weights import W

    line = W({"a": ["b"], "b": ["a", "c"], "c": ["b", "d"], "d": ["c"], "e": []}, silence_warnings=True)
    result = moran_permutation(pd.Series([1.0, 2.0, 3.0, 4.0, 9.0], index=list("abcde")), line, 99, 0)
    assert result.i == pytest.approx(0.4, abs=1e-12)
    assert (result.n, result.n_islands, result.expected) == (4, 1, pytest.approx(-1 / 3))
    with pytest.raises(ModelError, match="no entry in the spatial weights"):
        moran_permutation(pd.Series([1.0], index=["zz"]), line, 99, 0)


def test_moran_equals_esda_on_the_lattice() -> None:
    """Same I as esda.Moran on row-standardised weights; permutation p-values agree within sampling error."""
    import esda

    ids = [f"R{r:03d}" for r in range(SIDE * SIDE)]
    values = pd.Series(np.random.default_rng(15).normal(size=SIDE * SIDE), index=ids)
    values += 0.3 * np.sin(np.arange(SIDE * SIDE) // SIDE / 3.0)
    weights = lattice_weights()
    ours = moran_permutation(values, weights, 999, 0)
    np.random.seed(0)  # esda draws its permutations from NumPy's global state
    reference = esda.Moran(values.loc[weights.id_order].to_numpy(), weights, permutations=999)
    assert ours.i == pytest.approx(reference.I, abs=1e-12)
    assert ours.expected == pytest.approx(reference.EI, abs=1e-12)
    assert abs(ours.p_value - reference.p_sim) <= 0.02


def test_moran_with_an_island_region_in_the_model() -> None:
    """A region with no neighbours is fitted but left out of Moran's I, and counted."""
    frame = simulate(9, n_periods=1)
    extra = frame.iloc[[0]].assign(region_id="ISLAND", parent_id="P99")
    result = fit_count_model(pd.concat([frame, extra]), settings(penalty=False), lattice_weights(island="ISLAND"))
    assert result.moran.n_islands == 1 and result.moran.n == SIDE * SIDE


def test_vif_equals_statsmodels() -> None:
    """VIF from the inverse correlation matrix equals statsmodels' regression-based VIF."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    rng = np.random.default_rng(10)
    x = rng.normal(size=(500, 4))
    x[:, 3] = x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=500)
    exog = np.column_stack([np.ones(500), x])
    expected = [variance_inflation_factor(exog, j) for j in range(1, 5)]
    np.testing.assert_allclose(variance_inflation(pd.DataFrame(x)), expected, rtol=1e-9)


def test_missing_covariates_drop_rows_and_count_them() -> None:
    """Complete cases: rows with a NULL covariate are dropped, counted per reason, and absent from predictions."""
    frame = simulate(11, n_periods=2)
    frame.loc[:29, "x3"] = np.nan
    frame.loc[20:44, "x5"] = np.nan
    frame.loc[50:51, "expected_cases"] = 0.0
    result = fit_count_model(frame, settings(penalty=False))
    assert result.dropped == {"missing or zero expected_cases": 2, "missing x3": 30, "missing x5": 15}
    assert result.fit["n_dropped"].iloc[0] == 47 and result.fit["n"].iloc[0] == len(frame) - 47
    assert len(result.predictions) == len(frame) - 47


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f, "unknown covariates \\['x9'\\]"),
        (lambda f: f.assign(x0=np.nan), "all 400 rows were dropped .*missing x0: 400"),
        (lambda f: f.assign(cases=0), "zero in all 400 rows"),
        (lambda f: f.assign(x4=3.0), "covariates \\['x4'\\] are constant"),
        (lambda f: f.assign(x2=2 * f["x0"] - f["x1"]), "'x2' is perfectly collinear with \\['x0', 'x1'\\]"),
        (lambda f: f[f["region_id"] < "R003"], "3 distinct region_id values .* cv_folds=5"),
        (lambda f: f.assign(x6="a"), "\\['x6'\\] are not numeric"),
        (lambda f: f.drop(columns="expected_cases"), "lacks columns \\['expected_cases'\\]"),
    ],
)
def test_degenerate_inputs_raise_model_error_naming_the_cause(change, message) -> None:
    """Each degenerate input raises ModelError whose message names the cause."""
    frame = change(simulate(12, n_periods=1))
    covariates = [*COVARIATES, "x9"] if "x9" in message else COVARIATES
    with pytest.raises(ModelError, match=message):
        fit_count_model(frame, ModelSettings(covariates=covariates))


def test_severity_counts_above_cases_are_rejected() -> None:
    """Deaths above cases are a data error named with its region and period."""
    frame = simulate(13, n_periods=1).assign(deaths=0)
    frame.loc[5, "deaths"] = frame.loc[5, "cases"] + 1
    with pytest.raises(ModelError, match="deaths outside 0..cases \\(first: region R005"):
        fit_severity_model(frame, settings())


def test_same_result_on_rerun() -> None:
    """Same inputs and seed: bit-identical coefficients, CV curve, folds and predictions."""
    frame = simulate(14, n_periods=2)
    first, second = (fit_count_model(frame, settings(bootstrap=10, cv_group="parent")) for _ in range(2))
    for name in ("coefficients", "fit", "cv_path", "cv_deviance_by_fold", "folds", "predictions"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name), check_exact=True)


def test_settings_are_strict() -> None:
    """Unknown keys, wrong types and out-of-range values are rejected at the edge."""
    from pydantic import ValidationError

    bad = [{"l1_ratio": "0.5"}, {"lasso": True}, {"l1_ratio": 0.0}, {"missing": "mean"}, {"covariates": []}]
    for options in bad:
        with pytest.raises(ValidationError):
            ModelSettings(**{"covariates": ["x0"], **options})


def test_small_demo_recovers_planted_pm25_and_factor_effects(small_demo: Path) -> None:
    """On the demo's truth table (true factors, PM2.5, sampled cases, indirect expectation) the CIs cover the truth."""
    import json

    truth = json.loads((small_demo.parent / "truth.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(small_demo.parent / truth["region_period_truth"]).rename(
        columns={"year": "period", "sampled_cases": "cases", "expected_cases_indirect": "expected_cases"}
    )
    factors = [f"factor_{name}" for name in truth["factor_model"]["factors"]]
    result = fit_count_model(frame, ModelSettings(covariates=[*factors, "exposure_PM25"], penalty=False))
    rows = result.coefficients.set_index("term")
    pm25 = truth["rate_model"]["gamma_pollutants"]["PM25"]
    planted = {**truth["rate_model"]["beta_per_factor_sd"], "PM25": pm25["coefficient"] / pm25["scale"]}
    for term, beta in zip([*factors, "exposure_PM25"], planted.values(), strict=True):
        sd = rows.loc[term, "covariate_sd"]
        low, high = np.log(rows.loc[term, ["ci_low", "ci_high"]].astype(float)) / sd
        assert low <= beta <= high, f"{term}: planted {beta} outside [{low:.4f}, {high:.4f}]"
