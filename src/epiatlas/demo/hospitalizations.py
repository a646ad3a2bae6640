"""Record-level hospital discharges sampled from the Poisson means, in a Mexican egresos-style layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from epiatlas.demo import severity
from epiatlas.demo.diagnoses import (
    DIABETES_OTHER_CODES,
    DIABETES_TYPE1_CODES,
    OTHER_DIAGNOSES,
    TYPE1_SHARE_FROM_25,
    TYPE1_SHARE_UNDER_25,
)
from epiatlas.demo.population import AGE_LOWER, SEXES
from epiatlas.demo.world import World

OLDEST_AGE = 105
OPEN_GROUP_AGE_DECAY = 0.15  # geometric decay of single years above 85
DIABETES_WINTER_AMPLITUDE = 0.05


@dataclass(frozen=True)
class Stays:
    """Sampled stays as parallel arrays (one entry per record), before formatting."""

    region: np.ndarray
    year: np.ndarray  # index into spec.years
    age_group: np.ndarray
    sex: np.ndarray  # index into SEXES
    diag: np.ndarray  # 0 diabetes, d + 1 for OTHER_DIAGNOSES[d]


def sample_counts(world: World, rng: np.random.Generator) -> np.ndarray:
    """Poisson draws per diagnosis and cell, shape (1 + d, r, t, a, s); index 0 is diabetes."""
    means = np.concatenate([world.diabetes_mu[None], world.other_mu])
    return rng.poisson(means)


def expand(counts: np.ndarray) -> Stays:
    """One entry per sampled admission, from counts per (diagnosis, region, year, age, sex) cell."""
    cells = np.repeat(np.arange(counts.size), counts.ravel())
    diag, region, year, age_group, sex = np.unravel_index(cells, counts.shape)
    return Stays(region=region, year=year, age_group=age_group, sex=sex, diag=diag)


def single_year_ages(age_group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ages in years: uniform within 5-year groups, geometric above 85 (capped at OLDEST_AGE)."""
    within = rng.integers(0, 5, len(age_group))
    open_group = np.minimum(rng.geometric(OPEN_GROUP_AGE_DECAY, len(age_group)) - 1, OLDEST_AGE - AGE_LOWER[-1])
    return AGE_LOWER[age_group] + np.where(age_group == len(AGE_LOWER) - 1, open_group, within)


def pick_codes(table: dict[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` codes drawn with the table's weights."""
    weights = np.array(list(table.values()))
    return np.array(list(table))[rng.choice(len(table), size=n, p=weights / weights.sum())]


def icd10_codes(diag: np.ndarray, age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Primary diagnosis codes (upper case, no dot); type 1 diabetes is common only below 25."""
    codes = np.empty(len(diag), dtype=object)
    for d, dx in enumerate(OTHER_DIAGNOSES, start=1):
        rows = np.flatnonzero(diag == d)
        codes[rows] = pick_codes(dict(zip(dx.codes, dx.code_weights, strict=True)), len(rows), rng)
    rows = np.flatnonzero(diag == 0)
    type1 = rng.random(len(rows)) < np.where(age[rows] < 25, TYPE1_SHARE_UNDER_25, TYPE1_SHARE_FROM_25)
    codes[rows] = np.where(
        type1, pick_codes(DIABETES_TYPE1_CODES, len(rows), rng), pick_codes(DIABETES_OTHER_CODES, len(rows), rng)
    )
    return codes


def admission_dates(years: np.ndarray, winter_amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Admission dates within each calendar year, denser in winter by `winter_amplitude` (rejection sampling)."""
    start = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    length = ((years + 1 - 1970).astype("datetime64[Y]").astype("datetime64[D]") - start).astype(np.int64)
    day = np.zeros(len(years), dtype=np.int64)
    pending = np.arange(len(years))
    while pending.size:
        draw = rng.integers(0, length[pending])
        weight = 1.0 + winter_amplitude[pending] * np.cos(2 * np.pi * (draw - 15) / 365.25)
        accept = rng.random(pending.size) * (1.0 + winter_amplitude[pending]) < weight
        day[pending[accept]] = draw[accept]
        pending = pending[~accept]
    return start + day


def records_frame(world: World, counts: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The egresos table (sorted by admission date, folio = year + sequence) and its diagnosis index per row."""
    spec = world.spec
    stays = expand(counts)
    age = single_year_ages(stays.age_group, rng)
    factors = world.factors[stays.region, stays.year]
    pm25 = world.exposure[stays.region, stays.year, 0]
    death, icu, los = severity.stay_outcomes(stays.diag, age, stays.sex == 0, factors, pm25, rng)
    calendar_year = np.array(spec.years)[stays.year]
    winter = np.array([DIABETES_WINTER_AMPLITUDE] + [d.winter_amplitude for d in OTHER_DIAGNOSES])[stays.diag]
    admitted = admission_dates(calendar_year, winter, rng)
    order = np.lexsort((rng.random(len(admitted)), admitted))
    sequence = np.arange(len(order)) - np.searchsorted(calendar_year[order], calendar_year[order])
    folio = pd.Series(calendar_year[order].astype(str)) + pd.Series(sequence + 1).astype(str).str.zfill(7)
    frame = pd.DataFrame(
        {
            "folio": folio,
            "fecha_ingreso": admitted[order],
            "fecha_egreso": (admitted + los)[order],
            "cve_mun_res": world.municipalities["CVE_MUN"].to_numpy()[stays.region[order]],
            "edad": age[order].astype(np.int32),
            "sexo": np.array(SEXES, dtype=object)[stays.sex[order]],
            "diag_principal": icd10_codes(stays.diag, age, rng)[order],
            "motivo_egreso": severity.discharge_status(death, rng)[order].astype(object),
            "uci": np.where(icu, "S", "N").astype(object)[order],
        }
    )
    return frame, stays.diag[order]
