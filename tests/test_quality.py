"""Row accounting and the checks on computed region tables."""

from __future__ import annotations

import pandas as pd

from epiatlas.quality import Reconciliation, exposure_checks, region_period_checks


def test_reconciliation_balanced_and_within_limit() -> None:
    rec = Reconciliation("census", rows_read=100, rows_accepted=97, rows_quarantined=3, max_reject_share=0.05)
    assert rec.balanced and rec.passed
    assert rec.reject_share == 0.03
    assert "100 read = 97 accepted + 3 quarantined" in rec.message


def test_reconciliation_fails_above_reject_share_and_when_rows_go_missing() -> None:
    too_many = Reconciliation("census", 100, 90, 10, max_reject_share=0.05)
    assert too_many.balanced and not too_many.passed
    assert "ABOVE the limit 5.00%" in too_many.message
    lost = Reconciliation("census", 100, 90, 5, max_reject_share=0.5)
    assert not lost.balanced and not lost.passed
    assert "+5 unaccounted" in lost.message


def _outcomes(**overrides: list) -> pd.DataFrame:
    base = {
        "region_id": ["a", "b"],
        "period": [2020, 2020],
        "cases": [3, 10],
        "population": [100, 200],
        "expected_cases": [4.0, 9.0],
    }
    return pd.DataFrame({**base, **overrides})


def test_region_period_checks_pass_on_a_sound_table() -> None:
    verdicts = region_period_checks(_outcomes(), {"a", "b"}, [2020])
    assert [v.name for v in verdicts if not v.passed] == []


def test_region_period_checks_catch_each_violation() -> None:
    frame = _outcomes(cases=[300, 10], population=[100, 0], expected_cases=[4.0, 0.0])
    failed = {v.name: v for v in region_period_checks(frame, {"a", "b", "c"}, [2020]) if not v.passed}
    assert set(failed) == {"every_region_present", "population_positive", "cases_within_population", "expected_positive"}
    assert "'region_id': 'c'" in failed["every_region_present"].message
    assert failed["cases_within_population"].failing_rows == 2  # a: 300 > 100; b: 10 > 0


def test_exposure_checks_flag_invented_values_and_missing_regions() -> None:
    frame = pd.DataFrame(
        {
            "region_id": ["a", "b"],
            "period": [2020, 2020],
            "pollutant": ["PM25", "PM25"],
            "mean": [12.0, 30.0],
            "completeness": [0.9, 1.2],
            "assignment_method": ["within", "none"],
        }
    )
    failed = {v.name for v in exposure_checks(frame, {"a", "b", "c"}, [2020]) if not v.passed}
    assert failed == {"every_region_present", "completeness_is_share", "no_invented_values"}


def test_missing_expected_counts_fail_rather_than_pass_silently() -> None:
    frame = _outcomes(expected_cases=pd.array([4.0, pd.NA], dtype="Float64"), population=pd.array([100, pd.NA], dtype="Int64"))
    failed = {v.name for v in region_period_checks(frame, {"a", "b"}, [2020]) if not v.passed}
    assert failed == {"expected_positive"}, "NULL expected is not > 0; NULL population is unknown, not a violation"
