"""Find and parse the contract YAML files, from the checkout or the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from epiatlas.contracts.model import Contract
from epiatlas.errors import ContractError
from epiatlas.file_cache import cached_parse
from epiatlas.resources import resource_dir
from epiatlas.yaml_files import read_yaml_mapping


def contracts_dir() -> Path:
    """`<repo>/data_contracts` in a checkout, else the copy packaged under epiatlas/_resources."""
    return resource_dir("data_contracts")


def _error_location(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """Dotted key path of a validation error, with column names instead of list indices."""
    parts: list[str] = []
    node: Any = raw
    for step in loc:
        if isinstance(step, int) and isinstance(node, list) and step < len(node):
            node = node[step]
            label = node.get("name") if isinstance(node, dict) else None
            parts.append(f"{step}({label})" if label else str(step))
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(str(step))
    return ".".join(parts) or "<top level>"


def _parse_contract(path: Path) -> Contract:
    """Parse one contract file; any problem becomes a ContractError naming the file and key."""
    raw = read_yaml_mapping(path, ContractError, "contract")
    try:
        contract = Contract.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"key {_error_location(raw, e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ContractError(f"{path}: invalid contract: {problems}") from exc
    if contract.name != path.stem:
        raise ContractError(f"{path}: key name is {contract.name!r} but the file is named {path.stem!r}")
    return contract


parse_contract = cached_parse(_parse_contract)  # every asset and check reads contracts: parsed once per process


def load_contract(name: str, directory: Path | None = None) -> Contract:
    """The contract of table `name`."""
    path = (directory or contracts_dir()) / f"{name}.yaml"
    if not path.is_file():
        raise ContractError(f"no contract for table {name!r}: {path} does not exist")
    return parse_contract(path)


def load_contracts(directory: Path | None = None) -> dict[str, Contract]:
    """Every contract in the directory, by table name (sorted)."""
    paths = sorted((directory or contracts_dir()).glob("*.yaml"))
    return {p.stem: parse_contract(p) for p in paths}
