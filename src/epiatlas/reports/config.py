"""The `reports:` config section: when and at which level the regional reports are written."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ReportsConfig(BaseModel):
    """Regional HTML (and PDF) reports: schedule cadence, one report per region or per parent region, which ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    cron: str = Field("0 6 1 * *", description="cron cadence of the schedule that writes the latest period's reports")
    level: Literal["region", "parent"] = Field(
        "region", description="one report per region, or per parent region (e.g. a state) covering its regions")
    regions: list[str] | None = Field(
        None, min_length=1, description="region_ids (or parent_ids at level parent) to report on; default: all")
    enabled: bool = Field(True, description="whether the schedule runs (it can still be started in the UI)")
    pdf: bool = Field(True, description="also print each report to an A4 PDF in headless Chromium, stored as a public "
                                        "artifact next to its HTML (Chromium loads every report for the render "
                                        "check either way)")

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"reports.cron {v!r} is not a five-field cron expression (minute hour day month weekday)")
        return v
