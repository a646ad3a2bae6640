"""Disclosure control: complementary suppression survives differencing against every published total."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from epiatlas.config import OutcomesConfig
from epiatlas.disclosure import (
    DERIVED_COLUMNS,
    PUBLISHED_COLUMNS,
    DisclosureInputError,
    UnprotectableError,
    differencing_bounds,
    disclosure_failures,
    protect_outcomes,
)
from epiatlas.disclosure.blocks import feasible_ranges
from epiatlas.disclosure.checks import margin_checks
from epiatlas.outcomes import region_period_outcomes_from_counts
from tests.disclosure_attacker import attack, hidden_total, recovered

T = 5
POPULATION = 1000


def counts_outcomes(
    years: dict[int, dict[str, int]],
    parents: dict[str, str | None] | None = None,
    deaths: dict[str, int] | None = None,
    severe: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Private outcomes (threshold 5) from aggregated counts, with the regions and the one-stratum census."""
    ids = sorted(next(iter(years.values())))
    parents = parents or dict.fromkeys(ids)
    regions = pd.DataFrame({"region_id": ids, "parent_id": [parents[r] for r in ids]})
    counts = pd.DataFrame(
        [
            {"region_id": r, "period": y, "cases": c, "population": POPULATION}
            for y, cells in years.items()
            for r, c in cells.items()
        ]
    )
    for column, values in (("deaths", deaths), ("severe_cases", severe)):
        if values is not None:
            counts[column] = counts["region_id"].map(values)
    con = duckdb.connect()
    con.register("regions_df", regions)
    con.execute("CREATE TABLE regions AS SELECT * FROM regions_df")
    con.register("counts_df", counts)
    con.execute("CREATE TABLE hospitalization_counts AS SELECT * FROM counts_df")
    private = region_period_outcomes_from_counts(con, OutcomesConfig(suppression_threshold=T), sorted(years))
    census = counts.rename(columns={"period": "year"})[["region_id", "year", "population"]]
    census = census.assign(age_group="all", sex="all")
    return private, regions, census


def _published(cases: dict[str, int], parents: dict[str, str | None] | None = None, **kw):
    """Private outcomes, regions, census and the protection result for one period of hand-built counts."""
    private, regions, census = counts_outcomes({2020: cases}, parents, **kw)
    return private, regions, census, protect_outcomes(private, regions)


def _labels(result) -> dict[str, str | None]:
    table = result.table
    return {r: (None if pd.isna(s) else s) for r, s in zip(table["region_id"], table["suppression"], strict=True)}


def _attack_finds_nothing(result, regions, census) -> pd.DataFrame:
    bounds = attack(result.table, result.margins, census, regions)
    assert recovered(bounds).empty, recovered(bounds)
    return bounds


def _primary_only(private: pd.DataFrame) -> pd.DataFrame:
    """The old published view: primary cells blanked (expected too), nothing else."""
    table = private.copy()
    hidden = table["suppressed"].to_numpy(dtype=bool)
    table["suppression"] = pd.array(np.where(hidden, "primary", None), dtype="string")
    for column in ("cases", "deaths", "severe_cases", *DERIVED_COLUMNS):
        table[column] = table[column].mask(hidden)
    return table


# --- one suppressed cell ----------------------------------------------------------------------------------
def test_a_lone_small_cell_is_recovered_against_primary_suppression_only():
    private, regions, census, _ = _published({"A": 2, "B": 5, "C": 6, "D": 9, "E": 30})
    bounds = attack(_primary_only(private), None, census, regions)
    assert hidden_total(_primary_only(private), census, 2020) == pytest.approx(2)
    assert bounds[["region_id", "lower", "upper"]].values.tolist() == [["A", 2.0, 2.0]], "the attack must work"


def test_a_lone_small_cell_gets_the_smallest_complement_that_keeps_its_full_range():
    _, regions, census, result = _published({"A": 2, "B": 5, "C": 6, "D": 9, "E": 30})
    # B (5) and C (6) leave too little room below: A could not reach 4; D (9) is the smallest that works.
    assert _labels(result) == {"A": "primary", "B": None, "C": None, "D": "secondary", "E": None}
    bounds = _attack_finds_nothing(result, regions, census).set_index("region_id")
    assert bounds.loc["A", ["lower", "upper"]].tolist() == [1.0, 4.0]
    assert bounds.loc["D", ["lower", "upper"]].tolist() == [7.0, 10.0]


# --- two suppressed cells ---------------------------------------------------------------------------------
def test_two_small_cells_that_cover_each_other_need_no_complement():
    _, regions, census, result = _published({"A": 1, "B": 4, "C": 7, "D": 30})
    assert _labels(result) == {"A": "primary", "B": "primary", "C": None, "D": None}
    bounds = _attack_finds_nothing(result, regions, census)
    assert bounds[["lower", "upper"]].values.tolist() == [[1.0, 4.0], [1.0, 4.0]]


def test_two_small_cells_summing_to_two_are_pinned_without_a_complement_and_get_one():
    private, regions, census, result = _published({"A": 1, "B": 1, "C": 5, "D": 6, "E": 8, "F": 40})
    assert recovered(attack(_primary_only(private), None, census, regions))["region_id"].tolist() == ["A", "B"]
    assert _labels(result) == {"A": "primary", "B": "primary", "C": None, "D": None, "E": "secondary", "F": None}
    _attack_finds_nothing(result, regions, census)


# --- parents and their margins ----------------------------------------------------------------------------
def test_a_parent_with_one_hidden_cell_is_protected_inside_the_parent_and_published():
    parents = {"A": "X", "B": "X", "C": "X", "D": "Y", "E": "Y", "F": "Y"}
    private, regions, census, result = _published({"A": 2, "B": 20, "C": 30, "D": 10, "E": 12, "F": 50}, parents)
    assert _labels(result) == {"A": "primary", "B": "secondary", "C": None, "D": None, "E": None, "F": None}
    margins = result.margins.set_index(["level", "parent_id"], drop=False)
    x = margins[margins["parent_id"] == "X"].iloc[0]
    assert bool(x["published"]) and x["cases"] == 52 and x["hidden_cells"] == 2 and x["primary_cells"] == 1
    national = result.margins[result.margins["level"] == "national"].iloc[0]
    assert national["cases"] == 124 and pd.isna(national["parent_id"])
    _attack_finds_nothing(result, regions, census)
    # Against primary suppression plus the parent margin, A is pinned.
    naive_margins = result.margins.assign(published=True)
    assert "A" in recovered(attack(_primary_only(private), naive_margins, census, regions))["region_id"].tolist()


def test_a_parent_that_cannot_protect_its_cell_is_not_published_and_the_cell_is_covered_nationally():
    parents = {"A": "X", "B": "X", "C": "Y", "D": "Y", "E": "Y"}
    _, regions, census, result = _published({"A": 2, "B": 0, "C": 7, "D": 12, "E": 50}, parents)
    margins = result.margins.set_index("parent_id")
    assert not margins.loc["X", "published"] and pd.isna(margins.loc["X", "cases"])
    assert pd.isna(margins.loc["X", "expected_cases"]) and margins.loc["X", "population"] == 2000
    # Y had to be withdrawn so that its cells could cover A against the national total.
    assert not margins.loc["Y", "published"]
    assert _labels(result)["A"] == "primary" and _labels(result)["B"] is None
    assert list(_labels(result).values()).count("secondary") >= 1
    _attack_finds_nothing(result, regions, census)


def test_regions_without_a_parent_are_covered_by_the_national_total():
    parents = {"A": None, "B": None, "C": "Y", "D": "Y", "E": "Y"}
    _, regions, census, result = _published({"A": 3, "B": 40, "C": 7, "D": 12, "E": 50}, parents)
    assert _labels(result)["B"] == "secondary", "the only visible parentless cell covers A"
    assert bool(result.margins.set_index("parent_id").loc["Y", "published"])
    _attack_finds_nothing(result, regions, census)


# --- all cells small, zeros -------------------------------------------------------------------------------
def test_all_small_cells_that_cover_each_other_are_all_primary():
    _, regions, census, result = _published({"A": 1, "B": 2, "C": 3})
    assert set(_labels(result).values()) == {"primary"}
    _attack_finds_nothing(result, regions, census)


def test_a_period_no_complement_can_protect_is_withheld_whole_zeros_included():
    private, regions, census, result = _published({"A": 1, "B": 1, "C": 0, "D": 0})
    assert set(_labels(result).values()) == {"period"}
    assert result.table[["cases", "expected_cases", "shr"]].isna().all().all()
    assert result.counts.period_withheld == 4 and result.counts.primary == 0
    national = result.margins[result.margins["level"] == "national"].iloc[0]
    assert national["cases"] == 2 and national["primary_cells"] == 0
    bounds = _attack_finds_nothing(result, regions, census)
    assert (bounds["lower"] == 0).all() and (bounds["upper"] == 2).all()
    assert recovered(attack(_primary_only(private), None, census, regions))["region_id"].tolist() == ["A", "B"]


def test_zeros_stay_visible_and_are_never_complements():
    _, regions, census, result = _published({"A": 0, "B": 2, "C": 0, "D": 9, "E": 11})
    assert _labels(result) == {"A": None, "B": "primary", "C": None, "D": "secondary", "E": None}
    assert result.table.set_index("region_id").loc[["A", "C"], "cases"].tolist() == [0, 0]
    _attack_finds_nothing(result, regions, census)


def test_a_single_region_with_a_small_count_cannot_be_protected():
    with pytest.raises(UnprotectableError, match=r"period 2020: 1 region\(s\)"):
        _published({"A": 3})


# --- what the published table shows -----------------------------------------------------------------------
def test_hidden_rows_show_no_count_expected_ratio_or_rate_and_small_deaths_are_blank():
    private, _, _, result = _published(
        {"A": 2, "B": 9, "C": 40, "D": 20},
        deaths={"A": 1, "B": 0, "C": 3, "D": 6},
        severe={"A": 2, "B": 9, "C": 12, "D": 1},
    )
    table = result.table.set_index("region_id")
    assert list(result.table.columns) == list(PUBLISHED_COLUMNS)
    assert result.table.dtypes.drop("suppression").equals(private.dtypes)
    assert table.loc[["A", "B"], ["cases", "deaths", "severe_cases", *DERIVED_COLUMNS]].isna().all().all()
    assert table.loc[["A", "B"], "suppressed"].tolist() == [True, True]
    assert table.loc[["A", "B"], "population"].tolist() == [1000, 1000]
    assert pd.isna(table.loc["C", "deaths"]) and table.loc["C", "severe_cases"] == 12
    assert table.loc["D", "deaths"] == 6 and pd.isna(table.loc["D", "severe_cases"])
    assert table.loc["C", "shr"] == pytest.approx(private.set_index("region_id").loc["C", "shr"])
    assert not table.loc["C", "suppressed"]


def test_counts_stay_whole_numbers_when_the_private_table_comes_back_from_duckdb_without_nulls():
    private, regions, _, _ = _published({"A": 2, "B": 9, "C": 40})
    con = duckdb.connect()
    con.register("private_df", private)
    read_back = con.execute("SELECT * FROM private_df").df()
    assert read_back["cases"].dtype == "int64", "NumPy dtype, as DuckDB returns a column without NULLs"
    table = protect_outcomes(read_back, regions).table
    assert table["cases"].dtype == "Int64" and table["cases"].tolist()[2] == 40 and pd.isna(table["cases"][0])


def test_same_input_in_any_row_order_gives_identical_tables():
    private, regions, _, result = _published({"A": 2, "B": 5, "C": 6, "D": 9, "E": 30, "F": 9})
    shuffled = protect_outcomes(private.sample(frac=1, random_state=3), regions.sample(frac=1, random_state=4))
    assert _labels(shuffled) == _labels(result)
    pd.testing.assert_frame_equal(shuffled.margins, result.margins)


def test_bad_input_names_the_column_or_region():
    private, regions, _, _ = _published({"A": 2, "B": 9, "C": 40})
    with pytest.raises(DisclosureInputError, match=r"missing column\(s\) \['expected_cases'\]"):
        protect_outcomes(private.drop(columns="expected_cases"), regions)
    with pytest.raises(DisclosureInputError, match="not in regions, e.g. \\['C'\\]"):
        protect_outcomes(private, regions[regions["region_id"] != "C"])
    with pytest.raises(DisclosureInputError, match="parent_id"):
        protect_outcomes(private, regions.drop(columns="parent_id"))


# --- second implementation and random tables --------------------------------------------------------------
def test_closed_form_block_ranges_match_linear_programming():
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(2, 7))
        lower = rng.integers(0, 6, n).astype(float)
        upper = lower + rng.integers(0, 30, n)
        values = [int(rng.integers(lo, up + 1)) for lo, up in zip(lower, upper, strict=True)]
        bounds = list(zip(lower, upper, strict=True))
        for i, (lo, up) in enumerate(feasible_ranges(sum(values), bounds)):
            c = np.eye(n)[i]
            low = linprog(c, A_eq=np.ones((1, n)), b_eq=[sum(values)], bounds=bounds, method="highs").fun
            high = -linprog(-c, A_eq=np.ones((1, n)), b_eq=[sum(values)], bounds=bounds, method="highs").fun
            assert (lo, up) == pytest.approx((low, high))


@pytest.mark.parametrize("seed", range(8))
def test_random_hierarchical_tables_survive_the_attack(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 30))
    ids = [f"R{i:02d}" for i in range(n)]
    parents = {r: (None if rng.random() < 0.1 else f"P{int(rng.integers(0, 4))}") for r in ids}
    years = {y: {r: int(rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 12, 30])) for r in ids} for y in (2019, 2020)}
    private, regions, census = counts_outcomes(years, parents)
    try:
        result = protect_outcomes(private, regions)
    except UnprotectableError:
        pytest.fail("a period with several regions can always be withheld whole")
    by_attacker = _attack_finds_nothing(result, regions, census)
    audit = differencing_bounds(result.table, result.margins, regions)
    assert disclosure_failures(audit).empty
    pd.testing.assert_frame_equal(audit, by_attacker, check_dtype=False)  # library audit = HiGHS on the full system
    assert (result.table["suppression"].notna() == (result.table["cases"].isna())).all()


def test_the_library_audit_flags_what_primary_suppression_alone_gives_away():
    private, regions, census, result = _published({"A": 2, "B": 5, "C": 6, "D": 9, "E": 30})
    naive = _primary_only(private)
    failures = disclosure_failures(differencing_bounds(naive, result.margins, regions))
    assert failures[["region_id", "lower", "upper"]].values.tolist() == [["A", 2.0, 2.0]]


# --- the small demo, end to end ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_catalog(small_demo, small_demo_run):
    """The small demo run once through Dagster; what an analyst can read from its published catalog."""
    from epiatlas.config import load_config
    from epiatlas.publish import warehouse_for

    summary, _ = small_demo_run
    warehouse = warehouse_for(load_config(small_demo))
    with warehouse.read_catalog() as cat:
        public = {
            name: cat.execute(f"SELECT * FROM {name}").df()
            for name in ("published_outcomes", "published_outcome_margins", "census", "regions")
        }
    with warehouse.connect(["region_period_outcomes"]) as con:
        private = con.execute("SELECT * FROM region_period_outcomes").df()
    return summary, public, private


@pytest.mark.slow
def test_the_demo_catalog_survives_the_differencing_attack(demo_catalog):
    summary, public, private = demo_catalog
    assert ("published_outcome_margins", "survives_differencing", True) in summary.checks
    assert summary.failed_checks == []
    published, margins = public["published_outcomes"], public["published_outcome_margins"]
    assert published["suppression"].eq("primary").sum() > 0 and published["suppression"].eq("secondary").sum() > 0
    truth = private.assign(hidden=published.set_index(["region_id", "period"]).loc[
        list(zip(private["region_id"], private["period"], strict=True)), "suppression"].notna().to_numpy())
    for period in sorted(published["period"].unique()):
        # (a) works on the demo: the census and visible expected counts give the hidden total exactly.
        expected_hidden = truth.loc[truth["period"] == period].query("hidden")["cases"].sum()
        assert hidden_total(published, public["census"], int(period)) == pytest.approx(expected_hidden, abs=1e-6)
    bounds = _attack_finds_nothing_in(published, margins, public)
    assert len(bounds) == published["suppression"].notna().sum()
    assert margins["published"].sum() > len(published["period"].unique()), "some parent margins are published"


@pytest.mark.slow
def test_primary_suppression_with_the_same_parent_margins_gives_demo_cells_away(demo_catalog):
    _, public, private = demo_catalog
    naive = _primary_only(private)
    bounds = attack(naive, public["published_outcome_margins"], public["census"], public["regions"])
    pinned = recovered(bounds)
    assert len(pinned) >= 10, "parents with a single small cell give it away exactly"
    truth = private.set_index(["region_id", "period"])["cases"]
    exact = pinned[pinned["lower"] == pinned["upper"]]
    assert [truth[(r, p)] for r, p in zip(exact["region_id"], exact["period"], strict=True)] == exact["lower"].tolist()


def _attack_finds_nothing_in(published, margins, public) -> pd.DataFrame:
    bounds = attack(published, margins, public["census"], public["regions"])
    assert recovered(bounds).empty, recovered(bounds).head()
    return bounds


def test_margin_checks_fail_on_a_recoverable_cell_and_a_missing_national_total():
    private, regions, _, result = _published({"A": 2, "B": 5, "C": 6, "D": 9, "E": 30})
    good = margin_checks(result.margins, differencing_bounds(result.table, result.margins, regions), [2020])
    assert [(c.name, c.passed) for c in good] == [("one_national_margin_per_period", True), ("survives_differencing", True)]
    naive = differencing_bounds(_primary_only(private), result.margins, regions)
    bad = margin_checks(result.margins[result.margins["level"] != "national"], naive, [2020])
    assert [(c.name, c.passed, c.failing_rows) for c in bad] == [
        ("one_national_margin_per_period", False, 1),
        ("survives_differencing", False, 1),
    ]
    assert "'region_id': 'A'" in bad[1].message
