"""Match a file's columns to the contract's canonical columns through the source's `columns` mapping."""

from __future__ import annotations

from pathlib import Path

from epiatlas.config import SourceConfig
from epiatlas.contracts import Contract
from epiatlas.errors import ConfigError, SchemaMismatchError


def check_config_names(source: str, cfg: SourceConfig, contract: Contract) -> None:
    """Every canonical name used in `columns` and `recode` must exist in the contract."""
    for key, names in (("columns", cfg.columns), ("recode", cfg.recode)):
        unknown = sorted(set(names) - set(contract.column_names))
        if unknown:
            raise ConfigError(
                f"sources.{source}.{key} names {unknown}, which are not columns of the {contract.name} contract; "
                f"the canonical columns are {contract.column_names}"
            )


def map_columns(file: Path, file_columns: list[str], cfg: SourceConfig, contract: Contract) -> dict[str, str]:
    """Canonical name -> file column for every contract column found in the file (derived ones are never read)."""
    wanted = {c.name: cfg.columns.get(c.name, c.name) for c in contract.columns if not c.derived}
    found = {name: col for name, col in wanted.items() if col in file_columns}
    missing = [name for name in wanted if name not in found and not contract.column(name).optional]
    if missing:
        looked_for = ", ".join(f"{name} (as {wanted[name]!r})" for name in missing)
        raise SchemaMismatchError(
            f"{file}: missing required column(s) {looked_for}. The file has columns {file_columns}; "
            f"the mapping (sources.<name>.columns) is {cfg.columns or '{}'}. Rule: every non-optional contract "
            f"column must be present; map the canonical name to the file's column under 'columns'."
        )
    extra = [col for col in file_columns if col not in found.values()]
    if extra and cfg.extra_columns == "error":
        raise SchemaMismatchError(
            f"{file}: unexpected column(s) {extra} (rule extra_columns: error). Map them to canonical columns "
            f"{contract.column_names} under 'columns', or set 'extra_columns: ignore' for this source."
        )
    return found
