"""Locate the project's declarative resources (contracts, SQL) in a checkout or an installed wheel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from epiatlas.errors import EpiatlasError

ResourceName = Literal["data_contracts", "sql"]


def resource_dir(name: ResourceName) -> Path:
    """The `data_contracts/` or `sql/` folder: the checkout's copy first, else the packaged one."""
    checkout = Path(__file__).resolve().parents[2] / name
    if checkout.is_dir():
        return checkout
    packaged = Path(str(files("epiatlas") / "_resources" / name))
    if packaged.is_dir():
        return packaged
    raise EpiatlasError(f"cannot find the {name}/ folder next to the sources nor inside the installed package")
