"""The `models:` config section: which covariates, GLM settings, GBM settings, explanation grid.

Validated once at the edge; the GLM options are checked against `ModelSettings` when the file is read, so a
typo fails at `check-config`, not half-way through a run.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from epiatlas.models.gbm import GbmSettings
from epiatlas.models.settings import ModelSettings

ImagingCovariate = Literal[
    "share_normal", "share_bacterial", "share_viral", "share_covid19", "share_pneumonia",
    "mean_p_normal", "mean_p_bacterial", "mean_p_viral", "mean_p_covid19", "mean_p_pneumonia",
]  # fmt: skip
IMAGING_COVARIATES: tuple[str, ...] = get_args(ImagingCovariate)
PNEUMONIA_CLASSES = ("bacterial", "viral", "covid19")  # *_pneumonia = their sum = 1 - *_normal
_CLASSES = ("normal", *PNEUMONIA_CLASSES)


def _weights(column: str) -> np.ndarray:
    """An imaging covariate as weights on the 4 class shares, then the 4 mean class probabilities."""
    kind, _, cls = column.rpartition("_")
    block = np.array([c in (PNEUMONIA_CLASSES if cls == "pneumonia" else (cls,)) for c in _CLASSES], dtype=float)
    return np.concatenate([block, 0 * block] if kind == "share" else [0 * block, block])


class ModelsConfig(BaseModel):
    """Count models of the burden: covariates, penalized GLM, LightGBM and its explanations."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    covariates: list[str] | None = Field(
        None,
        min_length=1,
        description="covariate columns of the model frame; default: every socioeconomic index (not the composite), "
        "PM2.5's annual mean (pm25) and every user covariate; other pollutants (pm10, o3, no2, so2, co) when named",
    )
    glm: dict[str, Any] = Field(default_factory=dict, description="ModelSettings options other than covariates")
    gbm: GbmSettings = GbmSettings()
    imaging_covariates: list[ImagingCovariate] = Field(
        default_factory=list,
        description="columns of the public cxr_region_summary joined per region and period as covariates (needs the "
        "imaging: section); share_pneumonia and mean_p_pneumonia are bacterial + viral + covid19; default none. "
        "Region-periods without a published summary (no images, or suppressed) have no value and are left out of "
        "the fits (complete cases, counted in glm_fit and glm_coefficients: n, dropped_reasons); nothing is imputed",
    )
    enabled: bool = Field(True, description="false switches the count models (and their figures) off")
    severity: bool = Field(True, description="also fit the binomial severity model (deaths or severe cases)")
    pdp_grid_points: int = Field(20, ge=2)
    pdp_max_rows: int = Field(500, ge=10, description="rows averaged over for partial dependence and ICE")

    @field_validator("glm")
    @classmethod
    def _glm_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "covariates" in v:
            raise ValueError("set covariates in models.covariates, not in models.glm")
        try:
            ModelSettings(covariates=["placeholder"], **v)
        except ValidationError as exc:
            problems = "; ".join(f"models.glm.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors(include_url=False))
            raise ValueError(problems) from None
        return v

    @model_validator(mode="after")
    def _imaging_covariates(self) -> ModelsConfig:
        chosen = self.imaging_covariates
        if len(set(chosen)) < len(chosen):
            raise ValueError(f"models.imaging_covariates {chosen} names a column twice; name each once")
        both = sorted(set(chosen) & set(self.covariates or []))
        if both:
            raise ValueError(f"{both} are in both models.covariates and models.imaging_covariates; "
                             "name imaging columns only in models.imaging_covariates")
        sums_to_one = [_weights("share_normal") + _weights("share_pneumonia"),
                       _weights("mean_p_normal") + _weights("mean_p_pneumonia")]  # fmt: skip
        weights = np.array([*sums_to_one, *(_weights(c) for c in chosen)])
        if np.linalg.matrix_rank(weights) < len(weights):
            raise ValueError(f"models.imaging_covariates {chosen} add up to a constant or to one another (the class "
                             "shares sum to 1 and so do the mean probabilities; *_pneumonia = 1 - *_normal); "
                             "drop one of them")
        return self

    def imaging_problem(self, has_imaging: bool) -> str | None:
        """Why the imaging covariates cannot be used in a config with or without an `imaging:` section, else None."""
        if self.imaging_covariates and not has_imaging:
            return (f"models.imaging_covariates {self.imaging_covariates} need the imaging: section (and "
                    "sources.cxr_manifest), which this config lacks; add imaging: or set models.imaging_covariates: []")
        return None

    def glm_settings(self, covariates: list[str]) -> ModelSettings:
        """The GLM settings for the resolved covariates."""
        return ModelSettings(covariates=covariates, **self.glm)
