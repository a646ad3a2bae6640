"""Read the project's YAML files (configs, contracts) into mappings, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from epiatlas.errors import EpiatlasError


def read_yaml_mapping(path: Path, error: type[EpiatlasError], what: str) -> dict[str, Any]:
    """Parse `path` as YAML whose top level is a mapping; any problem raises `error` naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping at the top level of the {what}")
    return raw
