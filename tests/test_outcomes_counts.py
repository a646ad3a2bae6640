"""Region-period outcomes from aggregated `hospitalization_counts` (no age strata)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from epiatlas.config import OutcomesConfig
from epiatlas.outcomes import REGION_PERIOD_COLUMNS, region_period_outcomes_from_counts
from epiatlas.outcomes.errors import MissingPeriodError


def connect(counts: pd.DataFrame, regions: tuple[str, ...] = ("A", "B", "C")) -> duckdb.DuckDBPyConnection:
    """Connection with `regions` and `hospitalization_counts` built from the given frame."""
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest($r) AS region_id", {"r": list(regions)})
    con.register("counts_df", counts)
    con.execute("CREATE TABLE hospitalization_counts AS SELECT * FROM counts_df")
    return con


def test_population_only_uses_the_periods_overall_rate():
    counts = pd.DataFrame(
        {"region_id": ["A", "B", "A", "B"], "period": [2020, 2020, 2021, 2021], "cases": [10, 30, 5, 5],
         "population": [1000, 3000, 1000, 1000]}
    )  # fmt: skip
    out = region_period_outcomes_from_counts(connect(counts), OutcomesConfig(), [2020, 2021])
    rows = out.set_index(["region_id", "period"])
    assert tuple(out.columns) == REGION_PERIOD_COLUMNS
    assert rows.loc[("A", 2020), "expected_cases"] == pytest.approx(1000 * 40 / 4000)
    assert rows.loc[("A", 2021), "expected_cases"] == pytest.approx(1000 * 10 / 2000)
    assert rows.loc[("A", 2020), "crude_rate"] == pytest.approx(1000.0)
    assert out["std_rate"].isna().all() and out["deaths"].isna().all()
    # Region C is absent from the counts: zero cases, unknown population and expected.
    c = rows.loc[("C", 2020)]
    assert c["cases"] == 0 and pd.isna(c["population"]) and pd.isna(c["expected_cases"])
    sums = out.groupby("period")[["cases", "expected_cases"]].sum()
    assert sums.loc[2020, "expected_cases"] == pytest.approx(sums.loc[2020, "cases"])
    assert "std_rate is NULL" in out.attrs["metadata"]["standardisation"]


def test_supplied_expected_cases_are_used_as_given():
    counts = pd.DataFrame(
        {"region_id": ["A", "B"], "period": [2020, 2020], "cases": [10, 0], "deaths": [2, 0],
         "severe_cases": [4, 0], "expected_cases": [8.0, 2.5]}
    )  # fmt: skip
    out = region_period_outcomes_from_counts(connect(counts), OutcomesConfig(), [2020]).set_index("region_id")
    assert out.loc["A", "shr"] == pytest.approx(10 / 8.0)
    assert (out.loc["A", "deaths"], out.loc["A", "severe_cases"]) == (2, 4)
    assert out.loc["B", "shr"] == 0 and out.loc["B", "shr_upper"] > 0
    assert pd.isna(out.loc["A", "crude_rate"])


def test_counts_without_period_take_the_callers_period():
    counts = pd.DataFrame({"region_id": ["A", "B"], "cases": [6, 2], "population": [100, 100]})
    out = region_period_outcomes_from_counts(connect(counts), OutcomesConfig(), [2024], undated_period=2024)
    assert out.set_index("region_id")["cases"].to_dict() == {"A": 6, "B": 2, "C": 0}


def test_counts_without_period_need_one_from_the_caller():
    counts = pd.DataFrame({"region_id": ["A"], "period": [None], "cases": [6], "population": [100]})
    with pytest.raises(MissingPeriodError, match="undated_period"):
        region_period_outcomes_from_counts(connect(counts.astype({"period": "Int32"})), OutcomesConfig(), [2024])


def test_counts_partition_independence():
    counts = pd.DataFrame(
        {"region_id": ["A", "B"] * 2, "period": [2019, 2019, 2020, 2020], "cases": [3, 9, 4, 8],
         "population": [500, 700, 500, 700]}
    )  # fmt: skip
    both = region_period_outcomes_from_counts(connect(counts), OutcomesConfig(), [2019, 2020])
    alone = region_period_outcomes_from_counts(connect(counts), OutcomesConfig(), [2020])
    pd.testing.assert_frame_equal(both[both["period"] == 2020].reset_index(drop=True), alone)
