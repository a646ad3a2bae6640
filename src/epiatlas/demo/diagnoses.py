"""Primary diagnoses of the demo records: ICD-10 codes, age/sex rate curves and stay characteristics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epiatlas.demo.population import AGE_MID


def gompertz(level: float, slope: float) -> np.ndarray:
    """Rate per 100k rising exponentially with age; `level` at age 60."""
    return level * np.exp(slope * (AGE_MID - 60.0))


def bump(level: float, peak: float, width: float) -> np.ndarray:
    """Rate per 100k peaking at `peak` years of age."""
    return level * np.exp(-0.5 * ((AGE_MID - peak) / width) ** 2)


@dataclass(frozen=True)
class Diagnosis:
    """A primary-diagnosis group: codes with weights, yearly rate per 100k by age and sex, stay profile."""

    name: str
    codes: tuple[str, ...]
    code_weights: tuple[float, ...]
    female_per_100k: np.ndarray
    male_per_100k: np.ndarray
    death_probability: float
    mean_los_days: float
    icu_probability: float
    winter_amplitude: float

    def rates(self) -> np.ndarray:
        """Yearly admissions per person, shape (a, s) with sexes ordered H (male), M (female)."""
        return np.stack([self.male_per_100k, self.female_per_100k], axis=-1) / 1e5


def _diagnosis(
    name: str,
    codes: dict[str, float],
    female: np.ndarray,
    male_ratio: float,
    death: float,
    los: float,
    icu: float,
    winter: float = 0.0,
) -> Diagnosis:
    """Build a Diagnosis whose male curve is the female curve times `male_ratio`."""
    return Diagnosis(
        name, tuple(codes), tuple(codes.values()), female, male_ratio * female, death, los, icu, winter
    )


# Diabetes (E10-E14): rate model in rates.py; code choice depends on age (type 1 in the young).
DIABETES_TYPE1_CODES = {"E109": 0.4, "E101": 0.4, "E106": 0.2}
DIABETES_OTHER_CODES = {
    "E119": 0.30, "E115": 0.14, "E116": 0.10, "E112": 0.11, "E111": 0.07, "E110": 0.03, "E114": 0.04,
    "E117": 0.06, "E118": 0.03, "E149": 0.05, "E145": 0.02, "E139": 0.03, "E129": 0.02,
}  # fmt: skip
TYPE1_SHARE_UNDER_25 = 0.45
TYPE1_SHARE_FROM_25 = 0.03

OTHER_DIAGNOSES: list[Diagnosis] = [
    _diagnosis("pneumonia", {"J189": 0.7, "J180": 0.15, "J181": 0.15},
               bump(60, 0, 4) + gompertz(45, 0.06), 1.2, 0.08, 6.0, 0.06, 0.35),
    _diagnosis("acute_myocardial_infarction", {"I219": 0.6, "I210": 0.15, "I211": 0.1, "I214": 0.15},
               gompertz(25, 0.07), 2.2, 0.12, 6.0, 0.30, 0.15),
    _diagnosis("heart_failure", {"I500": 0.6, "I509": 0.3, "I501": 0.1},
               gompertz(20, 0.085), 1.1, 0.09, 7.0, 0.08, 0.2),
    _diagnosis("stroke", {"I639": 0.6, "I634": 0.2, "I635": 0.2}, gompertz(18, 0.075), 1.2, 0.14, 8.0, 0.10, 0.1),
    _diagnosis("copd", {"J449": 0.5, "J441": 0.3, "J440": 0.2}, gompertz(12, 0.085), 1.4, 0.06, 6.0, 0.05, 0.35),
    _diagnosis("appendicitis", {"K358": 0.6, "K353": 0.25, "K352": 0.15}, bump(55, 20, 12), 1.3, 0.002, 3.0, 0.01),
    _diagnosis("cholelithiasis", {"K802": 0.5, "K800": 0.2, "K801": 0.2, "K805": 0.1},
               bump(60, 45, 18), 0.4, 0.003, 3.0, 0.01),
    _diagnosis("spontaneous_delivery", {"O800": 0.7, "O809": 0.3}, bump(420, 25, 6), 0.0, 0.0002, 1.5, 0.002),
    _diagnosis("caesarean_delivery", {"O820": 0.5, "O821": 0.3, "O829": 0.2},
               bump(260, 28, 6), 0.0, 0.0004, 2.5, 0.005),
    _diagnosis("hip_fracture", {"S720": 0.5, "S721": 0.35, "S722": 0.15}, gompertz(6, 0.11), 0.5, 0.04, 9.0, 0.03),
    _diagnosis("urinary_tract_infection", {"N390": 1.0}, bump(8, 2, 4) + gompertz(14, 0.05), 0.5, 0.02, 4.0, 0.02),
    _diagnosis("chronic_kidney_disease", {"N185": 0.7, "N189": 0.3}, gompertz(12, 0.05), 1.3, 0.07, 6.0, 0.05),
]  # fmt: skip
OTHER_TREND_PER_YEAR = 0.01
