"""Model figures: each renders headless to a PNG of the requested size, draws what it promises, and is reproducible."""

from __future__ import annotations

from io import BytesIO

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from epiatlas.errors import ModelError
from epiatlas.models.plots import GLM_COLOR, choropleth, forest_plot, pdp_grid, shap_beeswarm

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pixels(png: bytes) -> np.ndarray:
    """The image as an (height, width, 3) uint8 array."""
    from matplotlib.image import imread

    assert png.startswith(PNG_MAGIC)
    return (imread(BytesIO(png), format="png")[:, :, :3] * 255).round().astype(np.uint8)


def count_colour(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
    """Pixels within `tolerance` of the colour in every channel."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image.astype(int) - rgb).max(axis=2) <= tolerance).sum())


def test_forest_plot_draws_intervals_and_preview_is_smaller() -> None:
    coefficients = pd.DataFrame(
        {
            "term": ["pm25 (per 10 ug/m3)", "deprivation index", "no_health_insurance"],
            "rate_ratio": [1.32, 1.60, 0.83],
            "ci_low": [1.26, 1.52, 0.79],
            "ci_high": [1.39, 1.68, 0.87],
        }
    )
    full, preview = pixels(forest_plot(coefficients)), pixels(forest_plot(coefficients, size="preview"))
    assert count_colour(full, GLM_COLOR) > 100  # the CI bars
    assert preview.shape[0] < full.shape[0] and preview.shape[1] < full.shape[1]
    assert forest_plot(coefficients) == forest_plot(coefficients)


def pdp_frame(glm: bool) -> pd.DataFrame:
    """Two features of a partial-dependence table, one increasing, one flat."""
    grid = np.linspace(-2.0, 2.0, 15)
    parts = []
    for feature, beta in [("pm25", 0.3), ("noise", 0.0)]:
        parts.append(
            pd.DataFrame(
                {
                    "outcome": "cases",
                    "feature": feature,
                    "grid_value": grid,
                    "reference_value": 0.0,
                    "rate_ratio": np.exp(beta * grid),
                    "ice_p10": np.exp(beta * grid - 0.05),
                    "ice_p50": np.exp(beta * grid),
                    "ice_p90": np.exp(beta * grid + 0.05),
                    "glm_rate_ratio": np.exp(0.9 * beta * grid) if glm and beta else np.nan,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_pdp_grid_draws_the_glm_line_only_when_given() -> None:
    with_glm, without = pixels(pdp_grid(pdp_frame(glm=True), title="cases")), pixels(pdp_grid(pdp_frame(glm=False)))
    assert count_colour(with_glm, GLM_COLOR) > 50
    assert count_colour(without, GLM_COLOR) == 0


def test_shap_beeswarm_colours_points_by_feature_value() -> None:
    rng = np.random.default_rng(0)
    rows = 400
    value = rng.normal(size=rows)
    table = pd.concat(
        [
            pd.DataFrame({"feature": "deprivation", "feature_value": value, "shap_value": 0.5 * value}),
            pd.DataFrame({"feature": "noise", "feature_value": -value, "shap_value": rng.normal(0, 0.01, rows)}),
        ],
        ignore_index=True,
    )
    png = shap_beeswarm(table, title="cases")
    image = pixels(png)
    red = (image[:, :, 0] > 150) & (image[:, :, 2] < 90)
    blue = (image[:, :, 2] > 150) & (image[:, :, 0] < 90)
    assert red.sum() > 100 and blue.sum() > 100
    assert png == shap_beeswarm(table, title="cases")
    assert shap_beeswarm(table, max_features=1) != png


def grid_regions() -> gpd.GeoDataFrame:
    """A 4 x 4 grid of one-degree squares in Mexico, region ids G00 .. G15."""
    boxes = [shapely.box(-100 + i, 19 + j, -99 + i, 20 + j) for j in range(4) for i in range(4)]
    return gpd.GeoDataFrame({"region_id": [f"G{k:02d}" for k in range(16)]}, geometry=boxes, crs="EPSG:4326")


def test_choropleth_from_wkb_marks_missing_regions_and_synthetic_caption() -> None:
    regions = grid_regions()
    wkb = pd.DataFrame({"region_id": regions["region_id"], "geometry": shapely.to_wkb(regions.geometry.values)})
    values = pd.DataFrame({"region_id": regions["region_id"][1:], "shr": np.linspace(0.5, 1.5, 15)})
    plain = choropleth(wkb, values, "shr", "SHR", center=1.0)
    marked = choropleth(wkb, values, "shr", "SHR", center=1.0, synthetic=True)
    assert count_colour(pixels(plain), "#d3d3d3", tolerance=2) > 200  # the region without a value, light grey
    assert count_colour(pixels(marked), "#b22222", tolerance=30) > count_colour(pixels(plain), "#b22222", 30) + 50
    assert choropleth(regions, values, "shr", "SHR", center=1.0) == plain
    assert pixels(choropleth(wkb, values, "shr", "SHR", size="preview")).shape[1] < pixels(plain).shape[1]


def test_plots_reject_unusable_frames() -> None:
    regions = grid_regions()
    twice = pd.DataFrame({"region_id": ["G00", "G00"], "shr": [1.0, 1.2]})
    with pytest.raises(ModelError, match=r"several rows for region\(s\) \['G00'\]"):
        choropleth(regions, twice, "shr", "SHR")
    with pytest.raises(ModelError, match=r"coefficients frame lacks column\(s\) \['ci_low', 'ci_high'\]"):
        forest_plot(pd.DataFrame({"term": ["a"], "rate_ratio": [1.0]}))
    with pytest.raises(ModelError, match="shap frame has no rows"):
        shap_beeswarm(pd.DataFrame(columns=["feature", "feature_value", "shap_value"]))
