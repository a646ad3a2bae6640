"""Region-period outcomes from records: hand-computed toy values, severity, partitions and the contract."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from epiatlas.config import OutcomesConfig, ReferencePopulationConfig, SeverityConfig
from epiatlas.contracts import evaluate_contract, load_contract
from epiatlas.outcomes import REGION_PERIOD_COLUMNS, region_period_outcomes
from epiatlas.outcomes.errors import AgeGroupError, MissingPopulationError, ReferencePopulationError
from epiatlas.outcomes.intervals import fay_feuer_ci

# Toy, 2020: one sex, two age groups. (region, age group) -> (population, cases)
TOY = {
    ("A", "0-39"): (1000, 2), ("A", "40+"): (1000, 8),
    ("B", "0-39"): (3000, 3), ("B", "40+"): (1000, 7),
    ("C", "0-39"): (500, 0), ("C", "40+"): (500, 0),
}  # fmt: skip
AGE_OF = {"0-39": 20, "40+": 60}
# Garwood 95% limits for 10 events from published exact-Poisson tables.
GARWOOD_10 = (4.7954, 18.3904)


def records(rows: list[dict]) -> pd.DataFrame:
    """Canonical hospitalization records from partial dicts (defaults: diabetes, alive, 2-day stay, no ICU)."""
    base = {"icd10": "E119", "discharge_status": "alive", "los": 2, "icu": None, "sex": "F", "year": 2020}
    out = []
    for i, row in enumerate(rows):
        r = {**base, **row}
        admitted = dt.date(r["year"], 3, 1)
        out.append(
            {
                "record_id": str(i), "admission_date": admitted,
                "discharge_date": admitted + dt.timedelta(days=r["los"]),
                "region_id": r["region_id"], "age": r["age"], "sex": r["sex"], "icd10": r["icd10"],
                "discharge_status": r["discharge_status"], "icu": r["icu"],
            }
        )  # fmt: skip
    return pd.DataFrame(out).astype({"icu": "boolean"})


def connect(
    census: pd.DataFrame, hosp: pd.DataFrame, regions: tuple[str, ...] = ("A", "B", "C")
) -> duckdb.DuckDBPyConnection:
    """In-memory connection holding the canonical tables the library expects."""
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest($r) AS region_id", {"r": list(regions)})
    con.register("census_df", census)
    con.execute(
        "CREATE TABLE census AS SELECT region_id, year::INTEGER AS year, age_group, sex, "
        "population::BIGINT AS population FROM census_df"
    )
    con.register("hosp_df", hosp)
    con.execute(
        "CREATE TABLE hospitalizations AS SELECT record_id, admission_date::DATE AS admission_date, "
        "discharge_date::DATE AS discharge_date, region_id, age::INTEGER AS age, sex, icd10, discharge_status, icu "
        "FROM hosp_df"
    )
    return con


def toy_census(years: tuple[int, ...] = (2020,)) -> pd.DataFrame:
    rows = [(r, y, g, "F", pop) for y in years for (r, g), (pop, _) in TOY.items()]
    return pd.DataFrame(rows, columns=["region_id", "year", "age_group", "sex", "population"])


def toy_records(years: tuple[int, ...] = (2020,)) -> pd.DataFrame:
    return records(
        [{"region_id": r, "age": AGE_OF[g], "year": y} for y in years for (r, g), (_, n) in TOY.items()
         for _ in range(n)]
    )


@pytest.fixture()
def toy() -> pd.DataFrame:
    return region_period_outcomes(connect(toy_census(), toy_records()), OutcomesConfig(), [2020]).set_index("region_id")


def test_columns_follow_the_contract(toy):
    assert tuple(toy.reset_index().columns) == REGION_PERIOD_COLUMNS
    assert REGION_PERIOD_COLUMNS == tuple(c.name for c in load_contract("region_period_outcomes").columns)


def test_output_passes_its_contract(toy):
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest(['A', 'B', 'C']) AS region_id")
    con.register("out_df", toy.reset_index())
    con.execute("CREATE TABLE out AS SELECT * FROM out_df")
    failed = [r for r in evaluate_contract(con, load_contract("region_period_outcomes"), "out") if not r.passed]
    assert failed == []


def test_expected_cases_by_hand(toy):
    young, old = 5 / 4500, 15 / 2500  # all-region stratum rates
    assert toy.loc["A", "expected_cases"] == pytest.approx(1000 * young + 1000 * old)
    assert toy.loc["B", "expected_cases"] == pytest.approx(3000 * young + 1000 * old)
    assert toy.loc["C", "expected_cases"] == pytest.approx(500 * young + 500 * old)
    assert toy["expected_cases"].sum() == pytest.approx(toy["cases"].sum())


def test_shr_and_exact_interval_match_published_garwood_limits(toy):
    expected = toy.loc["A", "expected_cases"]
    assert toy.loc["A", "shr"] == pytest.approx(10 / expected)
    assert toy.loc["A", "shr_lower"] == pytest.approx(GARWOOD_10[0] / expected, abs=1e-4)
    assert toy.loc["A", "shr_upper"] == pytest.approx(GARWOOD_10[1] / expected, abs=1e-4)


def test_zero_cases_have_zero_lower_limit_and_log_alpha_upper(toy):
    # For 0 events the exact upper limit is -ln(alpha/2) = 3.689.
    assert toy.loc["C", "shr"] == 0 and toy.loc["C", "shr_lower"] == 0
    assert toy.loc["C", "shr_upper"] == pytest.approx(-np.log(0.025) / toy.loc["C", "expected_cases"])


def test_crude_rate_and_interval_per_100k(toy):
    assert toy.loc["A", "crude_rate"] == pytest.approx(500.0)
    assert toy.loc["A", "crude_rate_lower"] == pytest.approx(GARWOOD_10[0] / 2000 * 1e5, abs=1e-2)
    assert toy.loc["A", "crude_rate_upper"] == pytest.approx(GARWOOD_10[1] / 2000 * 1e5, abs=1e-2)


def test_direct_rate_and_fay_feuer_interval_by_hand(toy):
    w_young, w_old = 4500 / 7000, 2500 / 7000  # pooled study population
    dsr = w_young * 2 / 1000 + w_old * 8 / 1000
    var = w_young**2 * 2 / 1000**2 + w_old**2 * 8 / 1000**2
    wm = w_young / 1000
    # Fay & Feuer (1997) in chi-square form: var/(2y) chi2(2y^2/var).
    lower = var / (2 * dsr) * stats.chi2.ppf(0.025, 2 * dsr**2 / var)
    upper = (var + wm**2) / (2 * (dsr + wm)) * stats.chi2.ppf(0.975, 2 * (dsr + wm) ** 2 / (var + wm**2))
    assert toy.loc["A", "std_rate"] == pytest.approx(dsr * 1e5)
    assert toy.loc["A", "std_rate_lower"] == pytest.approx(lower * 1e5)
    assert toy.loc["A", "std_rate_upper"] == pytest.approx(upper * 1e5)
    assert toy.loc["A", "std_rate_lower"] < toy.loc["A", "std_rate"] < toy.loc["A", "std_rate_upper"]


def test_custom_reference_weights_are_normalised():
    cfg = OutcomesConfig(reference_population=ReferencePopulationConfig(kind="custom", weights={"0-39": 3, "40+": 1}))
    out = region_period_outcomes(connect(toy_census(), toy_records()), cfg, [2020]).set_index("region_id")
    assert out.loc["B", "std_rate"] == pytest.approx((0.75 * 3 / 3000 + 0.25 * 7 / 1000) * 1e5)


def test_custom_reference_must_cover_census_groups():
    cfg = OutcomesConfig(reference_population=ReferencePopulationConfig(kind="custom", weights={"0-39": 1}))
    with pytest.raises(ReferencePopulationError, match="40\\+"):
        region_period_outcomes(connect(toy_census(), toy_records()), cfg, [2020])


def test_study_reference_of_a_missing_year_raises():
    cfg = OutcomesConfig(reference_population=ReferencePopulationConfig(year=1990))
    with pytest.raises(ReferencePopulationError, match="1990"):
        region_period_outcomes(connect(toy_census(), toy_records()), cfg, [2020])


def test_case_definition_filters_records():
    hosp = records([{"region_id": "A", "age": 20, "icd10": c} for c in ["E119", "E149", "E15", "I10", "E10"]])
    out = region_period_outcomes(connect(toy_census(), hosp), OutcomesConfig(), [2020])
    assert out.set_index("region_id")["cases"].to_dict() == {"A": 3, "B": 0, "C": 0}


def test_ages_map_to_the_group_with_greatest_lower_bound():
    hosp = records([{"region_id": "A", "age": a} for a in (0, 39, 40, 104)])
    con = connect(toy_census(), hosp)
    region_period_outcomes(con, OutcomesConfig(), [2020])
    strata = con.execute("SELECT age_group, cases FROM _epiatlas_strata WHERE region_id = 'A' ORDER BY 1").fetchall()
    assert strata == [("0-39", 2), ("40+", 2)]


def test_age_below_every_group_raises():
    census = toy_census().assign(age_group=lambda d: d["age_group"].replace({"0-39": "5-39"}))
    with pytest.raises(AgeGroupError, match="below the youngest"):
        region_period_outcomes(connect(census, records([{"region_id": "A", "age": 2}])), OutcomesConfig(), [2020])


def test_unparseable_age_group_raises():
    census = toy_census().assign(age_group=lambda d: d["age_group"].replace({"40+": "forty plus"}))
    with pytest.raises(AgeGroupError, match="forty plus"):
        region_period_outcomes(connect(census, toy_records()), OutcomesConfig(), [2020])


def test_period_without_census_raises():
    with pytest.raises(MissingPopulationError, match="2021"):
        region_period_outcomes(connect(toy_census(), toy_records()), OutcomesConfig(), [2020, 2021])


SEVERITY_ROWS = [
    {"region_id": "A", "age": 20, "discharge_status": "death"},
    {"region_id": "A", "age": 20, "los": 15},
    {"region_id": "A", "age": 20, "los": 14},
    {"region_id": "A", "age": 20, "icu": True},
    {"region_id": "A", "age": 20, "icu": False},
]


@pytest.mark.parametrize(
    ("severity", "icu_known", "severe"),
    [
        (SeverityConfig(), True, 3),
        (SeverityConfig(), False, 2),  # ICU column all NULL: criterion unavailable
        (SeverityConfig(death=False), True, 2),
        (SeverityConfig(los_days_gt=13), True, 4),
        (SeverityConfig(los_days_gt=None, icu=False), True, 1),
    ],
)
def test_severity_criteria(severity, icu_known, severe):
    hosp = records(SEVERITY_ROWS)
    if not icu_known:
        hosp["icu"] = pd.NA
    out = region_period_outcomes(connect(toy_census(), hosp), OutcomesConfig(severity=severity), [2020])
    row = out.set_index("region_id").loc["A"]
    assert (row["cases"], row["deaths"], row["severe_cases"]) == (5, 1, severe)


def test_missing_icu_is_reported_in_metadata():
    hosp = records(SEVERITY_ROWS).assign(icu=pd.NA)
    out = region_period_outcomes(connect(toy_census(), hosp), OutcomesConfig(), [2020])
    assert "unavailable in the source: ICU" in out.attrs["metadata"]["severity"]


def test_icu_column_absent_altogether():
    con = connect(toy_census(), records(SEVERITY_ROWS))
    con.execute("ALTER TABLE hospitalizations DROP COLUMN icu")
    out = region_period_outcomes(con, OutcomesConfig(), [2020])
    assert out.set_index("region_id").loc["A", "severe_cases"] == 2


def test_no_severity_criterion_gives_null_severe_cases():
    cfg = OutcomesConfig(severity=SeverityConfig(death=False, los_days_gt=None, icu=False))
    out = region_period_outcomes(connect(toy_census(), records(SEVERITY_ROWS)), cfg, [2020])
    assert out["severe_cases"].isna().all()


def test_every_region_and_period_present_even_without_cases_or_census():
    con = connect(toy_census((2019, 2020)), toy_records((2020,)), regions=("A", "B", "C", "D"))
    out = region_period_outcomes(con, OutcomesConfig(), [2020, 2019])
    assert list(zip(out["region_id"], out["period"])) == [(r, p) for r in "ABCD" for p in (2019, 2020)]
    d = out.set_index(["region_id", "period"]).loc[("D", 2020)]
    assert d["cases"] == 0 and pd.isna(d["population"]) and pd.isna(d["shr"])
    assert out[out["period"] == 2019]["cases"].sum() == 0


def test_expected_equals_observed_in_each_period():
    hosp = pd.concat([toy_records((2019,)), toy_records((2020,)).iloc[:15]], ignore_index=True)
    hosp["record_id"] = hosp.index.astype(str)
    out = region_period_outcomes(connect(toy_census((2019, 2020)), hosp), OutcomesConfig(), [2019, 2020])
    sums = out.groupby("period")[["cases", "expected_cases"]].sum()
    assert sums.loc[2019, "cases"] == 20 and sums.loc[2020, "cases"] == 15
    np.testing.assert_allclose(sums["expected_cases"].astype(float), sums["cases"].astype(float))


def test_partition_independence():
    hosp = pd.concat([toy_records((2019,)).iloc[:12], toy_records((2020,))], ignore_index=True)
    hosp["record_id"] = hosp.index.astype(str)
    census = toy_census((2019, 2020))
    both = region_period_outcomes(connect(census, hosp), OutcomesConfig(), [2019, 2020])
    alone = region_period_outcomes(connect(census, hosp), OutcomesConfig(), [2020])
    pd.testing.assert_frame_equal(both[both["period"] == 2020].reset_index(drop=True), alone)


def census_of(strata: dict[tuple[str, str], int]) -> pd.DataFrame:
    """2020 census rows (sex F) from {(region, age group): population}."""
    rows = [(r, 2020, g, "F", pop) for (r, g), pop in strata.items()]
    return pd.DataFrame(rows, columns=["region_id", "year", "age_group", "sex", "population"])


def records_of(cases: dict[tuple[str, str], int]) -> pd.DataFrame:
    """2020 records from {(region, age group): cases}."""
    return records([{"region_id": r, "age": AGE_OF[g]} for (r, g), n in cases.items() for _ in range(n)])


def direct_by_hand(population: dict, cases: dict, region: str) -> tuple[float, float, float]:
    """Direct rate, variance and max(w / n) for the pooled-census reference, summed with math.fsum."""
    pooled = {g: sum(n for (_, h), n in population.items() if h == g) for g in AGE_OF}
    weight = {g: n / sum(pooled.values()) for g, n in pooled.items()}
    strata = [(weight[g], cases[(region, g)], population[(region, g)]) for g in AGE_OF if population[(region, g)]]
    rate = math.fsum(w * c / n for w, c, n in strata)
    variance = math.fsum(w**2 * c / n**2 for w, c, n in strata)
    return rate, variance, max(w / n for w, _, n in strata)


def test_fay_feuer_bounds_keep_double_precision_with_variance_terms_of_1e_13():
    # Populations of millions make each variance term w^2 c / n^2 about 1e-13 (a fixed 18-decimal sum keeps
    # about five significant digits of them).
    population = {("A", "0-39"): 3_000_000, ("A", "40+"): 7_000_000, ("B", "0-39"): 4_000_000, ("B", "40+"): 3_000_000}
    cases = {("A", "0-39"): 5, ("A", "40+"): 9, ("B", "0-39"): 3, ("B", "40+"): 4}
    out = region_period_outcomes(connect(census_of(population), records_of(cases), ("A", "B")), OutcomesConfig(), [2020])
    for region, row in out.set_index("region_id").iterrows():
        rate, variance, max_weight = direct_by_hand(population, cases, region)
        assert 1e-14 < variance < 1e-12
        lower, upper = fay_feuer_ci(np.array([rate]), np.array([variance]), np.array([max_weight]), 0.95)
        assert row["std_rate"] == pytest.approx(rate * 1e5, rel=1e-14)
        assert row["std_rate_lower"] == pytest.approx(lower[0] * 1e5, rel=1e-13)
        assert row["std_rate_upper"] == pytest.approx(upper[0] * 1e5, rel=1e-13)


def test_empty_stratum_adds_zero_to_the_direct_rate_and_is_left_out_of_the_max_weight():
    # Region C has nobody aged 0-39: that stratum counts as a zero rate (its weight is not redistributed, as
    # the contract says) and w / n is taken over the populated stratum only.
    population = {("A", "0-39"): 1000, ("A", "40+"): 1000, ("C", "0-39"): 0, ("C", "40+"): 500}
    cases = {("A", "0-39"): 2, ("A", "40+"): 8, ("C", "0-39"): 0, ("C", "40+"): 3}
    out = region_period_outcomes(connect(census_of(population), records_of(cases), ("A", "C")), OutcomesConfig(), [2020])
    c = out.set_index("region_id").loc["C"]
    rate, variance, max_weight = direct_by_hand(population, cases, "C")
    assert rate == pytest.approx(1500 / 2500 * 3 / 500)  # w(40+) x 3 / 500, nothing for 0-39
    lower, upper = fay_feuer_ci(np.array([rate]), np.array([variance]), np.array([max_weight]), 0.95)
    assert c["std_rate"] == pytest.approx(rate * 1e5)
    assert (c["std_rate_lower"], c["std_rate_upper"]) == pytest.approx((lower[0] * 1e5, upper[0] * 1e5))
