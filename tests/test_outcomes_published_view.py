"""Suppression flags of the private outcomes and their published form, `published_outcomes`."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from epiatlas.config import OutcomesConfig
from epiatlas.contracts import evaluate_contract, load_contract
from epiatlas.disclosure import PUBLISHED_COLUMNS, protect_outcomes
from epiatlas.outcomes import region_period_outcomes_from_counts

BLANKED_WHEN_SUPPRESSED = [
    "cases", "deaths", "severe_cases", "shr", "shr_lower", "shr_upper", "crude_rate", "crude_rate_lower",
    "crude_rate_upper", "std_rate", "std_rate_lower", "std_rate_upper", "expected_cases",
]  # fmt: skip


@pytest.fixture()
def published() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Private outcomes for six regions and their published form, with threshold 5."""
    counts = pd.DataFrame(
        {"region_id": list("ABCDEF"), "period": 2020, "cases": [0, 1, 4, 5, 40, 20], "deaths": [0, 1, 2, 0, 3, 1],
         "severe_cases": [0, 1, 4, 5, 12, 1], "population": [1000] * 6}
    )  # fmt: skip
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest(['A', 'B', 'C', 'D', 'E', 'F']) AS region_id")
    con.register("counts_df", counts)
    con.execute("CREATE TABLE hospitalization_counts AS SELECT * FROM counts_df")
    private = region_period_outcomes_from_counts(con, OutcomesConfig(suppression_threshold=5), [2020])
    regions = pd.DataFrame({"region_id": list("ABCDEF"), "parent_id": [None] * 6})
    public = protect_outcomes(private, regions).table
    return private.set_index("region_id"), public.set_index("region_id")


def test_suppressed_flags_small_nonzero_counts_only(published):
    private, public = published
    assert private["suppressed"].to_dict() == {"A": False, "B": True, "C": True, "D": False, "E": False, "F": False}
    assert public["suppression"].isna().tolist() == [True, False, False, True, True, True], (
        "B (1) and C (4) cover each other against the national total: no complement needed"
    )


def test_published_table_keeps_the_private_columns_in_order_plus_the_reason(published):
    private, public = published
    assert list(public.columns) == list(private.columns) + ["suppression"]
    assert ["region_id", *public.columns] == list(PUBLISHED_COLUMNS)


def test_published_table_blanks_every_count_ratio_and_rate_of_suppressed_rows(published):
    private, public = published
    assert public.loc[["B", "C"], BLANKED_WHEN_SUPPRESSED].isna().all().all()
    assert public.loc[["B", "C"], "population"].tolist() == [1000, 1000]
    assert private.loc[["B", "C"], BLANKED_WHEN_SUPPRESSED[:4]].notna().all().all()


def test_published_table_blanks_small_deaths_and_severe_cases_on_visible_rows(published):
    _, public = published
    assert pd.isna(public.loc["E", "deaths"]) and public.loc["E", "severe_cases"] == 12
    assert pd.isna(public.loc["F", "deaths"]) and pd.isna(public.loc["F", "severe_cases"])
    assert public.loc["D", "deaths"] == 0 and public.loc["D", "severe_cases"] == 5


def test_published_table_keeps_true_zeros_and_large_cells(published):
    private, public = published
    assert public.loc["A", ["cases", "deaths", "severe_cases"]].tolist() == [0, 0, 0]
    assert public.loc["E", "shr"] == pytest.approx(private.loc["E", "shr"])
    assert public.loc["E", "crude_rate_upper"] == pytest.approx(private.loc["E", "crude_rate_upper"])


def test_published_table_meets_its_contract_and_a_leak_breaks_it(published):
    _, public = published
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest(['A', 'B', 'C', 'D', 'E', 'F']) AS region_id")
    con.register("good", public.reset_index())
    contract = load_contract("published_outcomes")
    assert [r.message for r in evaluate_contract(con, contract, "good") if not r.passed] == []
    leaky = public.reset_index()
    leaky.loc[leaky["region_id"] == "B", "shr"] = 1.5
    leaky.loc[leaky["region_id"] == "F", "deaths"] = 1
    con.register("leaky", leaky)
    failed = {r.check_name: r.failing_rows for r in evaluate_contract(con, contract, "leaky") if not r.passed}
    assert failed == {"contract_row_rules": 2}
