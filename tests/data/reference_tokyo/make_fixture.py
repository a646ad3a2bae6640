"""Regenerate the Tokyo working-age mortality reference fixture from the copy bundled in libpysal.

Source: libpysal (BSD-3-Clause), built-in example ``tokyo`` (no download: the files ship inside the wheel):
``Tokyomortality.csv`` (262 municipalities, observed and expected deaths aged 25-64, 1990, four covariates)
and ``tokyomet262.shp`` (boundaries, Tokyo datum / Japan Plane Rectangular CS VI, EPSG:30166).

Writes, next to this script:
  counts.csv       region_id, cases, expected_cases            (one row per municipality, no period)
  covariates.csv   region_id, occ_tec, ownh, pop65, unemp      (values exactly as shipped)
  regions.geojson  region_id, name, parent_id, parent_name     (EPSG:4326)

Usage (from the repository root):
  .venv/bin/python tests/data/reference_tokyo/make_fixture.py            # write the files
  .venv/bin/python tests/data/reference_tokyo/make_fixture.py --verify   # also refit and compare to GWR4

The boundaries are written as shipped (10 polygons have ring self-intersections); ``--make-valid`` repairs
them with shapely's make_valid instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from libpysal import examples

HERE = Path(__file__).resolve().parent

# JIS X 0401 prefecture codes: the first two digits of the 5-digit municipality code (GEOCODE).
PREFECTURES = {"08": "Ibaraki", "10": "Gunma", "11": "Saitama", "12": "Chiba", "13": "Tokyo", "14": "Kanagawa"}

COVARIATES = {"OCC_TEC": "occ_tec", "OWNH": "ownh", "POP65": "pop65", "UNEMP": "unemp"}

# Global (non-geographically-weighted) Poisson regression with offset log(eb2564), as printed by GWR4 4.0.90 in
# libpysal/examples/tokyo/tokyo_BS_NN_OFF_summary.txt ("Global regression result"); 6 decimals.
PUBLISHED = {
    "params": {"const": 0.007470, "occ_tec": -2.287906, "ownh": -0.259692, "pop65": 2.199387, "unemp": 0.064025},
    "bse": {"const": 0.065139, "occ_tec": 0.162000, "ownh": 0.047050, "pop65": 0.198270, "unemp": 0.010997},
    "deviance": 389.281580,
}


def load() -> gpd.GeoDataFrame:
    shapes = gpd.read_file(examples.get_path("tokyomet262.shp"))
    table = pd.read_csv(examples.get_path("Tokyomortality.csv"))
    if len(shapes) != 262 or len(table) != 262:
        raise SystemExit(f"expected 262 areas, got {len(shapes)} shapes and {len(table)} rows")
    # Readme_tokyomortality.txt: IDnum0 in the table matches AreaID in the shapefile.
    merged = shapes.merge(table, left_on="AreaID", right_on="IDnum0", how="inner", validate="one_to_one")
    if len(merged) != 262:
        raise SystemExit("AreaID/IDnum0 join lost rows")
    # The table's centroids must be the shapes' centroids (checks the join, in metres of EPSG:30166).
    gap = np.hypot(merged.geometry.centroid.x - merged.X_CENTROID, merged.geometry.centroid.y - merged.Y_CENTROID)
    if gap.max() > 1.0:
        raise SystemExit(f"table centroids do not match shapes (max {gap.max():.3f} m)")
    merged["region_id"] = merged["GEOCODE"].astype(str)
    if not merged["region_id"].str.fullmatch(r"\d{5}").all() or not merged["region_id"].is_unique:
        raise SystemExit("GEOCODE is not a unique 5-digit code")
    return merged.sort_values("region_id", kind="stable").reset_index(drop=True)


def write(merged: gpd.GeoDataFrame, make_valid: bool) -> None:
    counts = pd.DataFrame(
        {"region_id": merged["region_id"], "cases": merged["db2564"].astype("int64"),
         "expected_cases": merged["eb2564"].astype(float)}
    )
    counts.to_csv(HERE / "counts.csv", index=False, lineterminator="\n")

    covariates = merged[["region_id", *COVARIATES]].rename(columns=COVARIATES)
    covariates.to_csv(HERE / "covariates.csv", index=False, lineterminator="\n")

    parent = merged["region_id"].str[:2]
    if not parent.isin(list(PREFECTURES)).all():
        raise SystemExit(f"unknown prefecture codes: {sorted(set(parent) - set(PREFECTURES))}")
    regions = gpd.GeoDataFrame(
        {"region_id": merged["region_id"], "name": merged["AREANAME"], "parent_id": parent,
         "parent_name": parent.map(PREFECTURES)},
        geometry=merged.geometry, crs=merged.crs,
    )
    if make_valid:
        regions["geometry"] = regions.geometry.make_valid()
    regions = regions.to_crs(4326)  # pyproj picks "Tokyo to WGS 84 (108)", accuracy about 9 m
    out = HERE / "regions.geojson"
    out.unlink(missing_ok=True)
    regions.to_file(out, driver="GeoJSON", engine="pyogrio", COORDINATE_PRECISION=7, WRITE_NAME="NO")


def verify() -> int:
    import statsmodels.api as sm

    counts = pd.read_csv(HERE / "counts.csv", dtype={"region_id": str})
    covariates = pd.read_csv(HERE / "covariates.csv", dtype={"region_id": str})
    frame = counts.merge(covariates, on="region_id", validate="one_to_one")
    design = sm.add_constant(frame[list(COVARIATES.values())])
    fit = sm.GLM(frame["cases"], design, family=sm.families.Poisson(),
                 offset=np.log(frame["expected_cases"])).fit()
    worst = 0.0
    for name in design.columns:
        for what, value in (("params", fit.params[name]), ("bse", fit.bse[name])):
            diff = value - PUBLISHED[what][name]
            worst = max(worst, abs(diff))
            print(f"{what:6s} {name:8s} statsmodels {value: .9f}  published {PUBLISHED[what][name]: .6f}  diff {diff: .2e}")
    diff = fit.deviance - PUBLISHED["deviance"]
    worst = max(worst, abs(diff))
    print(f"deviance          statsmodels {fit.deviance: .9f}  published {PUBLISHED['deviance']: .6f}  diff {diff: .2e}")
    print(f"df_resid {fit.df_resid:.0f} (published: 262 areas, 5 parameters)")
    ok = worst <= 5e-7  # the source prints 6 decimals
    print("OK" if ok else "MISMATCH", f"(largest absolute difference {worst:.2e})")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verify", action="store_true", help="refit with statsmodels and compare to GWR4")
    parser.add_argument("--make-valid", action="store_true", help="repair the 10 self-intersecting polygons")
    args = parser.parse_args()
    write(load(), make_valid=args.make_valid)
    print(f"wrote {HERE / 'counts.csv'}, {HERE / 'covariates.csv'}, {HERE / 'regions.geojson'}")
    return verify() if args.verify else 0


if __name__ == "__main__":
    sys.exit(main())
