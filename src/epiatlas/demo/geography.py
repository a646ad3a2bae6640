"""Synthetic municipalities: real Mexican state outlines cut into Voronoi cells around random seeds."""

from __future__ import annotations

import geopandas as gpd
import libpysal
import numpy as np
import pandas as pd
import shapely

from epiatlas.demo.spec import DemoSpec

CRS = "EPSG:4326"
AREA_CRS = "EPSG:6372"

# Shapefile state name -> (INEGI state code, official name, 2020 census population in millions).
STATES: dict[str, tuple[str, str, float]] = {
    "Aguascalientes": ("01", "Aguascalientes", 1.43),
    "Baja California Norte": ("02", "Baja California", 3.77),
    "Baja California Sur": ("03", "Baja California Sur", 0.80),
    "Campeche": ("04", "Campeche", 0.93),
    "Coahuila De Zaragoza": ("05", "Coahuila de Zaragoza", 3.15),
    "Colima": ("06", "Colima", 0.73),
    "Chiapas": ("07", "Chiapas", 5.54),
    "Chihuahua": ("08", "Chihuahua", 3.74),
    "Distrito Federal": ("09", "Ciudad de México", 9.21),
    "Durango": ("10", "Durango", 1.83),
    "Guanajuato": ("11", "Guanajuato", 6.17),
    "Guerrero": ("12", "Guerrero", 3.54),
    "Hidalgo": ("13", "Hidalgo", 3.08),
    "Jalisco": ("14", "Jalisco", 8.35),
    "Mexico": ("15", "México", 16.99),
    "Michoacan de Ocampo": ("16", "Michoacán de Ocampo", 4.75),
    "Morelos": ("17", "Morelos", 1.97),
    "Nayarit": ("18", "Nayarit", 1.24),
    "Nuevo Leon": ("19", "Nuevo León", 5.78),
    "Oaxaca": ("20", "Oaxaca", 4.13),
    "Puebla": ("21", "Puebla", 6.58),
    "Queretaro de Arteaga": ("22", "Querétaro", 2.37),
    "Quintana Roo": ("23", "Quintana Roo", 1.86),
    "San Luis Potosi": ("24", "San Luis Potosí", 2.82),
    "Sinaloa": ("25", "Sinaloa", 3.03),
    "Sonora": ("26", "Sonora", 2.94),
    "Tabasco": ("27", "Tabasco", 2.40),
    "Tamaulipas": ("28", "Tamaulipas", 3.53),
    "Tlaxcala": ("29", "Tlaxcala", 1.34),
    "Veracruz-Llave": ("30", "Veracruz de Ignacio de la Llave", 8.06),
    "Yucatan": ("31", "Yucatán", 2.32),
    "Zacatecas": ("32", "Zacatecas", 1.62),
}


def load_states() -> gpd.GeoDataFrame:
    """The 32 states from libpysal's bundled Mexico shapefile (lon/lat without a .prj, so EPSG:4326)."""
    raw = gpd.read_file(libpysal.examples.get_path("mexicojoin.shp"))
    raw = raw.set_crs(CRS) if raw.crs is None else raw.to_crs(CRS)
    info = raw["NAME"].map(STATES)
    states = gpd.GeoDataFrame(
        {
            "CVE_ENT": info.str[0],
            "NOM_ENT": info.str[1],
            "population_share": info.str[2] / sum(v[2] for v in STATES.values()),
            "gdp_per_capita_2000": raw["PCGDP2000"].astype(float),
        },
        geometry=shapely.make_valid(raw.geometry.values),
        crs=CRS,
    )
    states["area_km2"] = states.to_crs(AREA_CRS).area / 1e6
    return states.sort_values("CVE_ENT").reset_index(drop=True)


def municipality_counts(states: gpd.GeoDataFrame, spec: DemoSpec) -> np.ndarray:
    """Municipalities per state: a minimum each, the rest by half area share, half population share."""
    n = len(states)
    if spec.n_municipalities < n * spec.min_municipalities_per_state:
        raise ValueError("n_municipalities is below the per-state minimum times the number of states")
    weight = 0.5 * states["area_km2"] / states["area_km2"].sum() + 0.5 * states["population_share"]
    quota = weight.to_numpy() * (spec.n_municipalities - n * spec.min_municipalities_per_state)
    counts = np.floor(quota).astype(int)
    remainder_order = np.argsort(-(quota - counts), kind="stable")
    counts[remainder_order[: spec.n_municipalities - n * spec.min_municipalities_per_state - counts.sum()]] += 1
    return counts + spec.min_municipalities_per_state


def seed_points(polygon: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` uniformly random points inside `polygon` by vectorised rejection sampling, as (n, 2)."""
    xmin, ymin, xmax, ymax = polygon.bounds
    shapely.prepare(polygon)
    found: list[np.ndarray] = []
    total = 0
    while total < n:
        xy = rng.uniform([xmin, ymin], [xmax, ymax], size=(4 * n + 16, 2))
        inside = xy[shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])]
        found.append(inside)
        total += len(inside)
    xy = np.concatenate(found)[:n]
    return xy[np.lexsort((xy[:, 0], -xy[:, 1]))]


def polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    """The (Multi)Polygon part of a clipped cell, dropping stray lines and points."""
    geom = shapely.make_valid(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polygons = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polygons)


def voronoi_cells(polygon: shapely.Geometry, points: np.ndarray) -> np.ndarray:
    """Voronoi cells of `points`, clipped to `polygon`, in the order of `points`."""
    if len(points) == 1:
        return np.array([polygon], dtype=object)
    xmin, ymin, xmax, ymax = polygon.bounds
    frame = shapely.box(xmin - 1.0, ymin - 1.0, xmax + 1.0, ymax + 1.0)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(points), extend_to=frame))
    # voronoi_polygons does not keep input order; match each seed to the cell that contains it.
    tree = shapely.STRtree(cells)
    seed_idx, cell_idx = tree.query(shapely.points(points), predicate="within")
    ordered = np.empty(len(points), dtype=object)
    ordered[seed_idx] = cells[cell_idx]
    clipped = shapely.intersection(ordered, polygon)
    return np.array([polygonal_part(g) for g in clipped], dtype=object)


def build_municipalities(states: gpd.GeoDataFrame, spec: DemoSpec) -> gpd.GeoDataFrame:
    """Synthetic municipalities nested in the real states, with INEGI-style 5-digit codes."""
    rng = spec.rng("geography")
    counts = municipality_counts(states, spec)
    frames = []
    for state, n in zip(states.itertuples(index=False), counts, strict=True):
        cells = voronoi_cells(state.geometry, seed_points(state.geometry, int(n), rng))
        numbers = np.arange(1, n + 1)
        frames.append(
            pd.DataFrame(
                {
                    "CVE_MUN": [f"{state.CVE_ENT}{k:03d}" for k in numbers],
                    "NOM_MUN": [f"Municipio {k:03d}" for k in numbers],
                    "CVE_ENT": state.CVE_ENT,
                    "NOM_ENT": state.NOM_ENT,
                    "geometry": cells,
                }
            )
        )
    municipalities = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=CRS)
    return municipalities


def centroids(municipalities: gpd.GeoDataFrame) -> np.ndarray:
    """Centroids (lon, lat) of each municipality, as (n, 2)."""
    return shapely.get_coordinates(shapely.centroid(municipalities.geometry.values))
