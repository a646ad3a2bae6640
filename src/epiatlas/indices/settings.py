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

    indicators: list[str] = Field(default_factory=builtin_indicators, min_length=3)
    n_factors: Literal["parallel"] | PositiveInt = "parallel"
    rotation: Literal["varimax", "promax", "oblimin"] = "varimax"
    method: Literal["minres", "ml"] = "minres"
    transform: Literal["none", "logit"] = "none"
    pooled: bool = True
    kmo_warn: float = Field(default=0.6, ge=0.0, le=1.0)
    msa_warn: float = Field(default=0.5, ge=0.0, le=1.0)
    parallel_iterations: PositiveInt = 20
    parallel_quantile: float = Field(default=0.95, gt=0.0, lt=1.0)
    seed: int = 20240517

    @field_validator("indicators")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        repeated = sorted({name for name in v if v.count(name) > 1})
        if repeated:
            raise ValueError(f"indicators listed more than once: {repeated}")
        return v
