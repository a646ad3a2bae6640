"""Queen contiguity weights of the region boundaries (libpysal), keyed by region id."""

from __future__ import annotations

import warnings

import pandas as pd


def queen_contiguity(regions: pd.DataFrame) -> object:
    """libpysal `W` in which regions sharing a boundary point are neighbours; islands have no neighbours.

    Parameters
    ----------
    regions : region_id and geometry (WKB in EPSG:4326, as stored in the `regions` table).
    """
    import geopandas as gpd
    from libpysal.weights import Queen

    shapes = gpd.GeoDataFrame(
        {"region_id": regions["region_id"].to_numpy()},
        geometry=gpd.GeoSeries.from_wkb(regions["geometry"].map(bytes)).to_numpy(),
        crs="EPSG:4326",
    )
    with warnings.catch_warnings():  # libpysal warns about islands; they are handled by the Moran's I test
        warnings.simplefilter("ignore")
        return Queen.from_dataframe(shapes, ids="region_id", use_index=False)
