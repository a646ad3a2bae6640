"""Typed settings of the penalized count models (the `models:` config section's GLM part).

Validated once at the edge (pydantic, strict, unknown keys rejected); the library receives this object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelSettings(BaseModel):
    """How the case-count and severity GLMs are specified, penalized, cross-validated and checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    covariates: list[str] = Field(min_length=1, description="Names of the covariate columns of the model frame.")
    offset: Literal["expected", "population"] = Field(
        "expected", description="Offset of the case model: log(expected_cases) or log(population)."
    )
    family: Literal["auto", "poisson", "negative_binomial"] = Field(
        "auto", description="Case-model family; 'auto' picks negative binomial when the overdispersion test rejects."
    )
    overdispersion_level: float = Field(0.05, gt=0.0, lt=1.0, description="Level of the overdispersion test.")
    severity_outcome: Literal["deaths", "severe_cases"] = Field(
        "deaths", description="Numerator of the binomial severity model (out of cases)."
    )
    period_effects: bool = Field(True, description="Unpenalized period dummies (first period is the reference).")
    penalty: bool = Field(True, description="Elastic net over a CV-chosen penalty; False fits the plain GLM.")
    l1_ratio: float = Field(0.5, gt=0.0, le=1.0, description="Elastic-net mixing: 1 = lasso, towards 0 = ridge.")
    n_alphas: int = Field(30, ge=2, description="Penalties on the path, log-spaced from the all-zero penalty down.")
    alpha_min_ratio: float = Field(1e-3, gt=0.0, lt=1.0, description="Smallest / largest penalty on the path.")
    cv_folds: int = Field(5, ge=2, description="Grouped K-fold cross-validation folds.")
    cv_group: Literal["region", "parent"] = Field(
        "region", description="CV groups: regions, or parent regions (spatial blocks)."
    )
    one_se_rule: bool = Field(False, description="Largest penalty within one SE of the CV minimum instead of it.")
    bootstrap: int = Field(50, ge=0, description="Region bootstrap resamples for selection frequencies (0 = none).")
    moran_permutations: int = Field(999, ge=19, description="Permutations of the Moran's I test.")
    seed: int = Field(0, ge=0, description="Seed of folds, bootstrap and permutations.")
    missing: Literal["complete_cases"] = Field(
        "complete_cases", description="Rows with a missing covariate are dropped and counted; nothing is imputed."
    )
