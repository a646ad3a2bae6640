"""ICD-10 case definitions: parsing, SQL matching in DuckDB, and clear errors for malformed entries."""

from __future__ import annotations

import duckdb
import pytest

from epiatlas.outcomes.case_definitions import CodeRange, case_predicate_sql, normalise_code, parse_case_definition
from epiatlas.outcomes.errors import CaseDefinitionError

CODES = ["E09", "E10", "E100", "E119", "E14", "E149", "E15", "I10", "J189", "J22", "J229", "J23", "Z99"]


def matching(definition: list[str]) -> list[str]:
    """Codes from CODES that the definition's SQL predicate selects, evaluated in DuckDB."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest($codes) AS icd10", {"codes": CODES})
    rows = con.execute(f"SELECT icd10 FROM t WHERE {case_predicate_sql(definition)} ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_normalise_removes_dot_and_upper_cases():
    assert normalise_code(" e11.9 ") == "E119"
    assert normalise_code("U07.1") == "U071"


def test_range_parses_to_first_and_last():
    assert parse_case_definition(["E10-E14", "I10"]) == [CodeRange("E10", "E14"), CodeRange("I10", "I10")]


def test_range_includes_every_code_starting_with_its_endpoints():
    assert matching(["E10-E14"]) == ["E10", "E100", "E119", "E14", "E149"]


def test_single_code_includes_its_subcodes_only():
    assert matching(["E11"]) == ["E119"]
    assert matching(["E11.9"]) == ["E119"]


def test_several_entries_are_ored():
    assert matching(["I10", "J18-J22"]) == ["I10", "J189", "J22", "J229"]
    assert matching(["Z99"]) == ["Z99"]


def test_range_with_longer_end_is_inclusive_of_its_subcodes():
    assert matching(["E09-E10.0"]) == ["E09", "E10", "E100"]


@pytest.mark.parametrize("bad", ["", "E1", "10-E14", "E10-", "E14-E10", "E10-E12-E14", "EE10", "E10;DROP"])
def test_malformed_definitions_raise(bad):
    with pytest.raises(CaseDefinitionError, match="case_icd10"):
        parse_case_definition([bad])


def test_empty_definition_raises():
    with pytest.raises(CaseDefinitionError):
        parse_case_definition([])
