"""Data contracts: YAML schemas of every table, the SQL that enforces them, and their documentation."""

from epiatlas.contracts.evaluate import RuleResult, check_names, evaluate_contract
from epiatlas.contracts.loader import contracts_dir, load_contract, load_contracts, parse_contract
from epiatlas.contracts.markdown import render_markdown
from epiatlas.contracts.model import ColumnSpec, Contract, RowRule, canonical_type

__all__ = [
    "ColumnSpec",
    "Contract",
    "RowRule",
    "RuleResult",
    "canonical_type",
    "check_names",
    "contracts_dir",
    "evaluate_contract",
    "load_contract",
    "load_contracts",
    "parse_contract",
    "render_markdown",
]
