"""The imaging example of docs/methods.md (linked from the README) is valid configuration, like the README's."""

from __future__ import annotations

from pathlib import Path

import yaml

from epiatlas.config import SourceConfig
from epiatlas.imaging.config import ImagingConfig

ROOT = Path(__file__).resolve().parents[1]


def _section_yaml(heading: str, doc: str = "docs/methods.md") -> dict:
    section = (ROOT / doc).read_text(encoding="utf-8").split(heading, 1)[1]
    return yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])


def test_readme_imaging_example_validates() -> None:
    example = _section_yaml("## Chest X-rays")
    SourceConfig.model_validate(example["sources"]["cxr_manifest"])
    imaging = ImagingConfig.model_validate(example["imaging"])
    assert imaging.train.arch == "densenet121" and imaging.train.pretrained_checkpoint is not None
