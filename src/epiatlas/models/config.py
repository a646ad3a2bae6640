"""The `models:` config section: which covariates, GLM settings, GBM settings, explanation grid.

Validated once at the edge; the GLM options are checked against `ModelSettings` when the file is read, so a
typo fails at `check-config`, not half-way through a run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from epiatlas.models.gbm import GbmSettings
from epiatlas.models.settings import ModelSettings


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
            raise ValueError(f"models.glm: {exc}") from exc
        return v

    def glm_settings(self, covariates: list[str]) -> ModelSettings:
        """The GLM settings for the resolved covariates."""
        return ModelSettings(covariates=covariates, **self.glm)
