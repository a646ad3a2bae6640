"""A tiny project (two unit-square regions, aggregated counts for 2020-2021) that runs in seconds."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import yaml

from tests.ingest_fixtures import square

COUNTS = "region_id,period,cases,population\nR1,2020,10,1000\nR2,2020,20,1500\nR1,2021,12,1000\nR2,2021,18,1500\n"


def tiny_project(root: Path, **overrides: object) -> Path:
    """Write data/regions.geojson, data/counts.csv and config.yaml under `root`; return the config path.

    `overrides` replace top-level config sections (e.g. outcomes={...}) or, as sources_<name>, one source entry.
    """
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame({"CVE": ["R1", "R2"]}, geometry=[square(0, 0), square(1, 0)], crs="EPSG:4326").to_file(
        data / "regions.geojson")
    (data / "counts.csv").write_text(COUNTS, encoding="utf-8")
    config: dict[str, object] = {
        "sources": {
            "regions": {"path": "data/regions.geojson", "columns": {"region_id": "CVE"}},
            "hospitalization_counts": {"path": "data/counts.csv"},
        },
        "periods": {"start": 2020, "end": 2021},
        "warehouse": {"root": "warehouse"},
    }
    for key, value in overrides.items():
        if key.startswith("sources_"):
            config["sources"][key.removeprefix("sources_")] = value  # type: ignore[index]
        else:
            config[key] = value
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
