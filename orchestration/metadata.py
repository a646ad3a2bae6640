"""Dagster metadata: written tables (row count, contract-described schema) and published catalogs."""

from __future__ import annotations

import base64

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from epiatlas.contracts import Contract
from epiatlas.warehouse import PublishedCatalog, WrittenTable


def table_metadata(contract: Contract, written: WrittenTable) -> dict[str, Any]:
    """Row count of the table (or partition) written, the contract's columns with stored types and units, location."""
    types = dict(written.schema)
    columns = [
        dg.TableColumn(
            name=c.name,
            type=types.get(c.name, c.type),
            description=c.description + (f" [{c.unit}]" if c.unit else ""),
        )
        for c in contract.columns
    ]
    return {
        "dagster/row_count": written.rows,
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "location": dg.MetadataValue.path(str(written.table_dir)),
        "privacy": contract.privacy,
    }


def catalog_metadata(published: PublishedCatalog) -> dict[str, Any]:
    """What a publish put in the catalog: tables with row counts, templates not yet computable, when, where."""
    return {
        "tables": dg.MetadataValue.json(dict(published.rows)),
        "not_yet_available": ", ".join(published.skipped) or "none",
        "catalog_info": dg.MetadataValue.json(dict(published.info)),
        "published_at": dg.MetadataValue.timestamp(datetime.fromisoformat(published.info["published_at"])),
        "location": dg.MetadataValue.path(str(published.path)),
    }


def published_from_metadata(metadata: Mapping[str, dg.MetadataValue]) -> PublishedCatalog:
    """The PublishedCatalog a `catalog` materialization reported (the inverse of `catalog_metadata`)."""
    skipped = metadata["not_yet_available"].value
    return PublishedCatalog(
        path=Path(metadata["location"].value),
        rows=metadata["tables"].value,
        skipped=() if skipped == "none" else tuple(skipped.split(", ")),
        info=metadata["catalog_info"].value,
    )


def png_preview(png: bytes, name: str) -> dg.MetadataValue:
    """A PNG shown inline in the asset's metadata in the UI (pass a small preview)."""
    return dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})")
