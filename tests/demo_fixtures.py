"""Variants of the small demo's config for tests whose subject is elsewhere."""

from __future__ import annotations

from epiatlas.config import EpiatlasConfig


def without_imaging_or_pdf(cfg: EpiatlasConfig) -> EpiatlasConfig:
    """A lighter copy of a demo config for tests whose subject is neither imaging nor PDF reports: no imaging group
    (no classifier to train), reports in HTML only."""
    return cfg.model_copy(update={
        "imaging": None,
        "sources": cfg.sources.model_copy(update={"cxr_manifest": None}),
        "models": cfg.models.model_copy(update={"imaging_covariates": []}),
        "reports": cfg.reports.model_copy(update={"pdf": False}),
    })  # fmt: skip
