"""Fixed-point sums (`epiatlas.outcomes.exact`): relative accuracy against math.fsum, and order independence."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from epiatlas.outcomes.exact import exact_sum_sql, group_unit_sql

# Magnitudes of the groups: Fay-Feuer variance terms (~1e-13), rates, counts, and a group mixing 1 with 1e-13.
SCALES = {0: 1e-13, 1: 1e-5, 2: 1.0, 3: 1e4}


def exact_sums(terms: pd.DataFrame, threads: int = 1) -> pd.Series:
    """Sum of `x` per group `g` through the library's SQL, on the given number of DuckDB threads."""
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("terms_df", terms)
    con.execute("CREATE TABLE terms AS SELECT * FROM terms_df")  # a table, so the scan runs in parallel
    return con.execute(
        f"""
        SELECT g, {exact_sum_sql("x", "x_unit")} AS total
        FROM (SELECT g, x, {group_unit_sql("x", "g")} AS x_unit FROM terms)
        GROUP BY g ORDER BY g
        """
    ).df().set_index("g")["total"]


def tiny_terms(n_per_group: int, seed: int = 7) -> pd.DataFrame:
    """Positive terms in [0.5, 1.5) x the group's scale; group 4 mixes one term of 1 with terms of ~1e-13."""
    rng = np.random.default_rng(seed)
    groups = [pd.DataFrame({"g": g, "x": scale * rng.uniform(0.5, 1.5, n_per_group)}) for g, scale in SCALES.items()]
    groups.append(pd.DataFrame({"g": 4, "x": np.r_[1.0, 1e-13 * rng.uniform(0.5, 1.5, n_per_group - 1)]}))
    return pd.concat(groups, ignore_index=True)


def test_terms_of_1e_13_are_summed_to_double_precision():
    terms = tiny_terms(8)  # eight terms of ~1e-13: a sum below 1.2e-12, as in the Fay-Feuer variance
    totals = exact_sums(terms)
    for g, x in terms.groupby("g")["x"]:
        reference = math.fsum(x)
        assert abs(totals[g] - reference) <= math.ulp(reference), (g, totals[g], reference)


def test_many_terms_are_within_a_few_ulps_of_fsum():
    terms = tiny_terms(50_000)
    totals = exact_sums(terms, threads=4)
    for g, x in terms.groupby("g")["x"]:
        assert totals[g] == pytest.approx(math.fsum(x), rel=4 * np.finfo(float).eps, abs=0)


def test_byte_identical_whatever_the_row_order_and_thread_count():
    terms = tiny_terms(150_000)  # 750,000 rows: several DuckDB row groups, so threads split every group
    terms.loc[terms.index % 3 == 0, "x"] *= -1  # signed terms too
    reference = exact_sums(terms, threads=1).to_numpy().tobytes()
    for seed, threads in ((1, 2), (2, 4), (3, 8)):
        shuffled = terms.sample(frac=1, random_state=seed, ignore_index=True)
        assert exact_sums(shuffled, threads=threads).to_numpy().tobytes() == reference


def test_exact_sums_of_doubles_come_back_exactly_and_edge_groups():
    x = pd.array([20.0, 40.0, 0.1, 0.2, 0.0, 0.0, None], dtype="Float64")  # group 3: only a NULL term
    terms = pd.DataFrame({"g": [0, 0, 1, 1, 2, 2, 3], "x": x})
    totals = exact_sums(terms)
    assert totals[0] == 60.0  # exact, where a decimal fixed point comes back as 59.99999999999999
    assert totals[1] == math.fsum([0.1, 0.2])  # 0.30000000000000004: the exact sum of the two doubles, rounded
    assert totals[2] == 0.0 and pd.isna(totals[3])
