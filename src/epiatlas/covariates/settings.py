"""Typed settings of the user's covariate tables (`covariates:` in the config); no contract file is needed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, model_validator

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
KEY_COLUMNS = ("region_id", "period")
# DuckDB's row position pseudo-column, which staging uses: a real column of that name would shadow it.
RESERVED_COLUMNS = ("rowid",)


def _lower_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a lower-case identifier: use a-z, 0-9 and _, starting with a letter "
                         f"(e.g. gdp_per_capita); it becomes a column or table name")
    return name


def _variable_name(name: str) -> str:
    if name in KEY_COLUMNS:
        raise ValueError(f"{name!r} is a key column of every covariate table; name the variable otherwise")
    if name in RESERVED_COLUMNS:
        raise ValueError(f"{name!r} is reserved (DuckDB's row position column); name the variable otherwise")
    return _lower_identifier(name)


CovariateName = Annotated[str, AfterValidator(_lower_identifier)]
VariableName = Annotated[str, AfterValidator(_variable_name)]


class CovariateVariable(BaseModel):
    """One numeric covariate: the file column it is read from, its unit, meaning and valid range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = Field(None, description="column in the file; the variable's own name when null")
    unit: str = Field(min_length=1, description="e.g. percent, MXN per person, persons per km2")
    description: str = Field(min_length=1)
    min: StrictFloat | None = Field(None, description="inclusive lower bound; a value below it is quarantined")
    max: StrictFloat | None = Field(None, description="inclusive upper bound; a value above it is quarantined")
    integer: StrictBool = Field(False, description="values must be whole numbers")
    nullable: StrictBool = Field(True, description="an empty cell is a missing value; false quarantines the row")

    @model_validator(mode="after")
    def _ordered_range(self) -> CovariateVariable:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class CovariateTableConfig(BaseModel):
    """One covariate file (or glob of files): one row per region, or per region and period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    format: Literal["csv", "parquet"] | None = Field(None, description="implied by the file suffix when null")
    encoding: str = "utf-8"
    delimiter: str | None = None
    description: str = ""
    region_column: str = Field("region_id", description="column holding the region code (regions.region_id)")
    period_column: str | None = Field(None, description="column holding the year; null for a region-level table")
    variables: dict[VariableName, CovariateVariable] = Field(min_length=1)
    extra_columns: Literal["error", "ignore"] = "error"

    @model_validator(mode="after")
    def _distinct_file_columns(self) -> CovariateTableConfig:
        read = [self.region_column, self.period_column, *self.file_columns.values()]
        repeated = sorted({c for c in read if c is not None and read.count(c) > 1})
        if repeated:
            raise ValueError(f"file column(s) {repeated} are read twice (region_column, period_column and each "
                             f"variable's column must differ)")
        return self

    @property
    def file_columns(self) -> dict[str, str]:
        """Variable name -> the file column it is read from."""
        return {name: var.column or name for name, var in self.variables.items()}
