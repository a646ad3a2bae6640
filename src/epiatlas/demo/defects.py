"""Realistically bad record rows that a data contract must quarantine, with their counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

UNKNOWN_MUNICIPALITY_SUFFIX = "999"  # INEGI's "municipio no especificado"
MALFORMED_ICD10 = ("E1", "9E11", "EE11", "1190", "E")
DEFECTS = ("discharge_before_admission", "unknown_municipality", "malformed_icd10", "missing_sex")


def inject_record_defects(
    records: pd.DataFrame, diag: np.ndarray, share: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """Spoil disjoint random rows, one defect each; return the rows, counts per defect and diabetes rows hit."""
    n = max(1, round(share * len(records)))
    records = records.copy()
    stays_a_day = np.flatnonzero((records["fecha_egreso"] > records["fecha_ingreso"]).to_numpy())
    before = rng.choice(stays_a_day, size=n, replace=False)
    rest = np.setdiff1d(np.arange(len(records)), before)
    unknown, malformed, no_sex = rng.choice(rest, size=3 * n, replace=False).reshape(3, n)
    col = records.columns.get_loc
    los = records["fecha_egreso"].to_numpy()[before] - records["fecha_ingreso"].to_numpy()[before]
    records.iloc[before, col("fecha_egreso")] = records["fecha_ingreso"].to_numpy()[before] - los
    state = records["cve_mun_res"].str[:2].to_numpy()
    records.iloc[unknown, col("cve_mun_res")] = state[unknown] + UNKNOWN_MUNICIPALITY_SUFFIX
    bad_codes = np.array(MALFORMED_ICD10, dtype=object)[rng.integers(0, len(MALFORMED_ICD10), n)]
    records.iloc[malformed, col("diag_principal")] = bad_codes
    records.iloc[no_sex, col("sexo")] = None
    rows = dict(zip(DEFECTS, [before, unknown, malformed, no_sex], strict=True))
    counts = {name: int(len(r)) for name, r in rows.items()}
    diabetes_hit = {name: int((diag[r] == 0).sum()) for name, r in rows.items()}
    return records, counts, diabetes_hit
