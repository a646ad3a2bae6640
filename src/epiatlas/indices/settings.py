"""Typed settings of the socioeconomic indices (factor analysis), validated once at the edge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from epiatlas.contracts.loader import load_contract

INDICATOR_CONTRACT = "socioeconomic_indicators"


def builtin_indicators() -> list[str]:
    """The percent indicator columns of the `socioeconomic_indicators` contract, in contract order."""
    return [c.name for c in load_contract(INDICATOR_CONTRACT).columns if c.unit == "percent"]


class IndicesSettings(BaseModel):
    """How indicators become factor indices: indicator set, extraction, rotation, adequacy thresholds.

    Any column names may be given as `indicators`; none has to be listed in a contract.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = Field(default=True, description="false switches the factor indices off")
    indicators: list[str] = Field(
        default_factory=builtin_indicators, min_length=3,
        description="indicator columns to factor-analyse; default: the contract's indicators that "
        "sources.socioeconomic_indicators maps (at least 3, else the indices are off)",
    )
    n_factors: Literal["parallel"] | PositiveInt = Field(
        default="parallel", description="'parallel' (Horn's parallel analysis) or a fixed number of factors"
    )
    rotation: Literal["varimax", "promax", "oblimin"] = Field(default="varimax", description="Kaiser-normalised")
    method: Literal["minres", "ml"] = Field(default="minres", description="extraction: minimum residual or ML")
    transform: Literal["none", "logit"] = Field(
        default="none", description="'logit': empirical logit of percent indicators (0-100) before standardising"
    )
    pooled: bool = Field(default=True, description="one fit on all region x period rows (else one per period)")
    kmo_warn: float = Field(default=0.6, ge=0.0, le=1.0, description="warn when the overall KMO is below")
    msa_warn: float = Field(default=0.5, ge=0.0, le=1.0, description="warn when an indicator's MSA is below")
    parallel_iterations: PositiveInt = Field(default=20, description="random data sets of parallel analysis")
    parallel_quantile: float = Field(
        default=0.95, gt=0.0, lt=1.0, description="random eigenvalue quantile a factor must exceed"
    )
    seed: int = Field(default=20240517, description="seed of parallel analysis")

    @field_validator("indicators")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        repeated = sorted({name for name in v if v.count(name) > 1})
        if repeated:
            raise ValueError(f"indicators listed more than once: {repeated}")
        return v
