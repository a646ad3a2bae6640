"""Outcome of each stay: in-hospital death, ICU use, length of stay and discharge status.

Diabetes stays (x = (age − 60)/10, F = factor scores, pm = (PM2.5 − 15)/10 of the region-year):
  logit P(death) = DEATH_INTERCEPT + DEATH_AGE·x + DEATH_MALE·male + Σ DEATH_FACTORS_k F_k + DEATH_PM25·pm
  logit P(ICU)   = ICU_INTERCEPT + ICU_AGE·x + ICU_DEATH·death + Σ ICU_FACTORS_k F_k
  LOS ~ floor(Gamma(shape, mean = LOS_BASE · exp(LOS_AGE·x + LOS_DEATH·death + LOS_ICU·icu + Σ LOS_FACTORS_k F_k)))
Other stays use their diagnosis' death/ICU probability and mean LOS with the same age/death/ICU terms.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from epiatlas.demo.diagnoses import OTHER_DIAGNOSES
from epiatlas.demo.socioeconomic import FACTORS

DEATH_INTERCEPT = -3.0
DEATH_AGE = 0.40
DEATH_MALE = 0.15
DEATH_FACTORS = dict(zip(FACTORS, [0.20, 0.05, 0.25], strict=True))
DEATH_PM25 = 0.10
ICU_INTERCEPT = -3.0
ICU_AGE = 0.10
ICU_DEATH = 1.5
ICU_FACTORS = dict(zip(FACTORS, [-0.10, 0.0, -0.20], strict=True))
LOS_BASE_DAYS = 5.5
LOS_SHAPE = 1.6
LOS_AGE = 0.08
LOS_DEATH = 0.35
LOS_ICU = 0.6
LOS_FACTORS = dict(zip(FACTORS, [0.0, 0.0, 0.10], strict=True))
OTHER_DEATH_AGE = 0.30
OTHER_LOS_AGE = 0.05
TRANSFER_SHARE = 0.03  # of survivors
OTHER_DISCHARGE_SHARE = 0.01  # of survivors (voluntary discharge, escape, ...)
STATUS_CODES = {"alive": "1", "death": "2", "transfer": "3", "other": "4"}


def _factor_term(factors: np.ndarray, effects: dict[str, float]) -> np.ndarray:
    """Σ_k effect_k F_k for each row of `factors` (n, k)."""
    return factors @ np.array([effects[f] for f in FACTORS])


def stay_outcomes(
    diag: np.ndarray, age: np.ndarray, male: np.ndarray, factors: np.ndarray, pm25: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Death (bool), ICU (bool) and LOS in days per stay; `diag` is 0 for diabetes, d + 1 for OTHER_DIAGNOSES[d]."""
    x = (age - 60.0) / 10.0
    diabetes = diag == 0
    other = np.maximum(diag - 1, 0)
    death_base = logit(np.array([d.death_probability for d in OTHER_DIAGNOSES]))[other] + OTHER_DEATH_AGE * x
    death_diab = (
        DEATH_INTERCEPT + DEATH_AGE * x + DEATH_MALE * male + _factor_term(factors, DEATH_FACTORS)
        + DEATH_PM25 * (pm25 - 15.0) / 10.0
    )  # fmt: skip
    death = rng.random(len(diag)) < expit(np.where(diabetes, death_diab, death_base))
    icu_base = logit(np.array([d.icu_probability for d in OTHER_DIAGNOSES]))[other]
    icu_diab = ICU_INTERCEPT + ICU_AGE * x + _factor_term(factors, ICU_FACTORS)
    icu = rng.random(len(diag)) < expit(np.where(diabetes, icu_diab, icu_base) + ICU_DEATH * death)
    los_base = np.array([d.mean_los_days for d in OTHER_DIAGNOSES])[other] * np.exp(OTHER_LOS_AGE * x)
    los_diab = LOS_BASE_DAYS * np.exp(LOS_AGE * x + _factor_term(factors, LOS_FACTORS))
    mean_los = np.where(diabetes, los_diab, los_base) * np.exp(LOS_DEATH * death + LOS_ICU * icu)
    los = np.floor(rng.gamma(LOS_SHAPE, mean_los / LOS_SHAPE)).astype(np.int64)
    return death, icu, los


def discharge_status(death: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Discharge status codes as in the file: 2 for deaths, else mostly 1, some 3 (transfer) and 4 (other)."""
    u = rng.random(len(death))
    alive = np.where(
        u < TRANSFER_SHARE,
        STATUS_CODES["transfer"],
        np.where(u < TRANSFER_SHARE + OTHER_DISCHARGE_SHARE, STATUS_CODES["other"], STATUS_CODES["alive"]),
    )
    return np.where(death, STATUS_CODES["death"], alive)


def model_description() -> dict[str, object]:
    """The severity model's coefficients, for truth.json."""
    return {
        "covariates": "x = (age - 60) / 10; male = 1 for sex H; F = true factor scores of the region-year; "
        "pm = (true PM2.5 exposure of the region-year - 15) / 10",
        "death_logit": {
            "intercept": DEATH_INTERCEPT, "age_per_10y": DEATH_AGE, "male": DEATH_MALE,
            "factors": DEATH_FACTORS, "pm25_per_10ugm3": DEATH_PM25,
        },
        "icu_logit": {"intercept": ICU_INTERCEPT, "age_per_10y": ICU_AGE, "death": ICU_DEATH, "factors": ICU_FACTORS},
        "los_days": {
            "distribution": "floor(Gamma(shape, scale = mean / shape))", "shape": LOS_SHAPE,
            "mean_at_reference": LOS_BASE_DAYS, "log_mean_age_per_10y": LOS_AGE, "log_mean_death": LOS_DEATH,
            "log_mean_icu": LOS_ICU, "log_mean_factors": LOS_FACTORS,
        },
        "long_stay": "los_days > 14 (the config's severity.los_days_gt); follows from the LOS model",
        "discharge_status_of_survivors": {"transfer": TRANSFER_SHARE, "other": OTHER_DISCHARGE_SHARE},
        "other_diagnoses": "death/ICU probability and mean LOS per diagnosis (see other_diagnoses); "
        f"logit death += {OTHER_DEATH_AGE}·x, log mean LOS += {OTHER_LOS_AGE}·x, ICU logit += {ICU_DEATH}·death",
    }  # fmt: skip
