"""Suppression flags and the published view `sql/views/region_period_outcomes.sql`."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from epiatlas.config import OutcomesConfig
from epiatlas.outcomes import region_period_outcomes_from_counts

VIEW = Path(__file__).resolve().parents[1] / "sql" / "views" / "region_period_outcomes.sql"
BLANKED_WHEN_SUPPRESSED = [
    "cases", "deaths", "severe_cases", "shr", "shr_lower", "shr_upper", "crude_rate", "crude_rate_lower",
    "crude_rate_upper", "std_rate", "std_rate_lower", "std_rate_upper", "expected_cases",
]  # fmt: skip


@pytest.fixture()
def published() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Private outcomes for six regions and their published view, with threshold 5."""
    counts = pd.DataFrame(
        {"region_id": list("ABCDEF"), "period": 2020, "cases": [0, 1, 4, 5, 40, 20], "deaths": [0, 1, 2, 0, 3, 1],
         "severe_cases": [0, 1, 4, 5, 12, 1], "population": [1000] * 6}
    )  # fmt: skip
    con = duckdb.connect()
    con.execute("CREATE TABLE regions AS SELECT unnest(['A', 'B', 'C', 'D', 'E', 'F']) AS region_id")
    con.register("counts_df", counts)
    con.execute("CREATE TABLE hospitalization_counts AS SELECT * FROM counts_df")
    private = region_period_outcomes_from_counts(con, OutcomesConfig(suppression_threshold=5), [2020])
    con.register("private_df", private)
    con.execute("CREATE TABLE private_outcomes AS SELECT * FROM private_df")
    sql = re.sub(r"\{\{\s*region_period_outcomes\s*\}\}", "private_outcomes", VIEW.read_text())
    assert "{{" not in sql
    con.execute(f"CREATE VIEW published AS {sql}")
    public = con.execute("SELECT * FROM published ORDER BY region_id").df()
    return private.set_index("region_id"), public.set_index("region_id")


def test_suppressed_flags_small_nonzero_counts_only(published):
    private, _ = published
    assert private["suppressed"].to_dict() == {"A": False, "B": True, "C": True, "D": False, "E": False, "F": False}


def test_view_keeps_the_private_columns_in_order(published):
    private, public = published
    assert list(public.columns) == list(private.columns)


def test_view_blanks_every_count_ratio_and_rate_of_suppressed_rows(published):
    private, public = published
    assert public.loc[["B", "C"], BLANKED_WHEN_SUPPRESSED].isna().all().all()
    assert public.loc[["B", "C"], "population"].tolist() == [1000, 1000]
    assert private.loc[["B", "C"], BLANKED_WHEN_SUPPRESSED[:4]].notna().all().all()


def test_view_blanks_small_deaths_and_severe_cases_on_visible_rows(published):
    _, public = published
    assert pd.isna(public.loc["E", "deaths"]) and public.loc["E", "severe_cases"] == 12
    assert pd.isna(public.loc["F", "deaths"]) and pd.isna(public.loc["F", "severe_cases"])
    assert public.loc["D", "deaths"] == 0 and public.loc["D", "severe_cases"] == 5


def test_view_keeps_true_zeros_and_large_cells(published):
    private, public = published
    assert public.loc["A", ["cases", "deaths", "severe_cases"]].tolist() == [0, 0, 0]
    assert public.loc["E", "shr"] == pytest.approx(private.loc["E", "shr"])
    assert public.loc["E", "crude_rate_upper"] == pytest.approx(private.loc["E", "crude_rate_upper"])
