"""Figures of a regional report as PNG bytes: map with the region highlighted, SHR against the other regions,
trend over periods, SHAP drivers, PM2.5 against the guideline.

Drawn from the public `region_profile` only, on their own Agg `Figure`s (no pyplot), small enough to embed in
an HTML file. Suppressed cells have no value and are drawn as such (grey, or left out and counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from epiatlas.models.plots import _figure, _png, _ratio_axis

HIGHLIGHT, OTHERS, HIDDEN = "#d62728", "#7f7f7f", "#d9d9d9"
SIZE = "full"
MINOR_LABELS = {"0.2", "0.3", "0.5", "2", "3", "5"}  # labelled minor ticks of the log SHR colour bar


@dataclass(frozen=True)
class RegionShapes:
    """Each region's boundary as matplotlib paths, built once and reused by every map of a run."""

    region_ids: tuple[str, ...]
    paths: tuple[object, ...]  # one matplotlib Path per region (all its polygon rings)
    bounds: tuple[float, float, float, float]

    @classmethod
    def from_wkb(cls, regions: pd.DataFrame, tolerance: float = 0.01) -> RegionShapes:
        """From `regions` (region_id, geometry as WKB in EPSG:4326), simplified to `tolerance` degrees."""
        import shapely
        from matplotlib.path import Path

        geometries = shapely.simplify(shapely.from_wkb(regions["geometry"].map(bytes).to_numpy()), tolerance)
        paths = []
        for geometry in geometries:
            rings = [ring for polygon in getattr(geometry, "geoms", [geometry]) if polygon.geom_type == "Polygon"
                     for ring in (polygon.exterior, *polygon.interiors)]  # fmt: skip
            paths.append(Path.make_compound_path(*(Path(np.asarray(r.coords)[:, :2], closed=True) for r in rings)))
        return cls(tuple(regions["region_id"]), tuple(paths), tuple(shapely.total_bounds(geometries)))


def region_map(shapes: RegionShapes, shr: pd.Series, highlight: Sequence[str], title: str) -> bytes:
    """SHR of every region (grey where hidden) with the report's regions outlined in red.

    Parameters
    ----------
    shr : SHR by region_id for the period (NaN or absent where the cell is hidden).
    highlight : region_ids outlined.
    """
    from matplotlib.collections import PathCollection
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter

    values = shr.reindex(list(shapes.region_ids)).to_numpy(float)
    fig, (ax,) = _figure(5.0, 3.8, SIZE)
    known = np.isfinite(values) & (values > 0)
    span = max(np.nanquantile(np.abs(np.log(values[known])), 0.98), 0.1) if known.any() else 1.0
    collection = PathCollection([p for p, k in zip(shapes.paths, known, strict=True) if k], cmap="RdBu_r",
                                norm=LogNorm(np.exp(-span), np.exp(span)), linewidths=0.1,
                                edgecolors="white")  # fmt: skip
    collection.set_array(values[known])
    ax.add_collection(PathCollection([p for p, k in zip(shapes.paths, known, strict=True) if not k],
                                     facecolors=HIDDEN, linewidths=0.1, edgecolors="white"))  # fmt: skip
    ax.add_collection(collection)
    chosen = set(highlight)
    ax.add_collection(PathCollection([p for r, p in zip(shapes.region_ids, shapes.paths, strict=True) if r in chosen],
                                     facecolors="none", edgecolors=HIGHLIGHT, linewidths=1.5))  # fmt: skip
    bar = fig.colorbar(collection, ax=ax, shrink=0.6, label="SHR (grey: suppressed or no value)")
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
    bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.2g}" if f"{v:.2g}" in MINOR_LABELS else ""))
    x0, y0, x1, y1 = shapes.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return _png(fig)


def shr_ranking(period_rows: pd.DataFrame, highlight: Sequence[str], title: str) -> bytes:
    """Every visible region's SHR with its CI, sorted, the report's regions in red; hidden cells counted below."""
    visible = period_rows.dropna(subset=["shr"]).sort_values(["shr", "region_id"]).reset_index(drop=True)
    fig, (ax,) = _figure(5.0, 3.2, SIZE)
    chosen = visible["region_id"].isin(list(highlight)).to_numpy()
    x = np.arange(len(visible))
    for mask, color, size in ((~chosen, OTHERS, 4), (chosen, HIGHLIGHT, 16)):
        ax.vlines(x[mask], visible["shr_lower"][mask], visible["shr_upper"][mask], color=color, linewidth=0.6)
        ax.scatter(x[mask], visible["shr"][mask], color=color, s=size, zorder=3)
    ax.axhline(1.0, color="black", linewidth=0.6, linestyle="--")
    _ratio_axis(ax, "y")
    ax.set_xticks([])
    hidden = int(period_rows["shr"].isna().sum())
    ax.set_xlabel(f"{len(visible)} regions by SHR; {hidden} suppressed or without a value not shown", fontsize=8)
    ax.set_ylabel("SHR (95% CI)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def trend(rows: pd.DataFrame, title: str) -> bytes:
    """SHR with CI per period for one region (periods where the cell is hidden marked on the axis)."""
    rows = rows.sort_values("period")
    fig, (ax,) = _figure(5.0, 2.6, SIZE)
    visible = rows.dropna(subset=["shr"])
    ax.errorbar(visible["period"], visible["shr"], yerr=[visible["shr"] - visible["shr_lower"],
                visible["shr_upper"] - visible["shr"]], color=HIGHLIGHT, marker="o", capsize=3)  # fmt: skip
    hidden = rows[rows["shr"].isna()]["period"]
    ax.scatter(hidden, np.ones(len(hidden)), marker="x", color=OTHERS, label="suppressed")
    if len(hidden):
        ax.legend(fontsize=7, loc="best")
    ax.axhline(1.0, color="black", linewidth=0.6, linestyle="--")
    ax.set_xticks(rows["period"].tolist())
    ax.set_ylabel("SHR (95% CI)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def drivers(features: Sequence[str], shap_values: Sequence[float], title: str) -> bytes:
    """Waterfall-like bars of the signed SHAP contributions (log rate ratio), largest on top."""
    fig, (ax,) = _figure(5.0, 0.6 + 0.45 * len(features), SIZE)
    order = list(range(len(features)))[::-1]
    values = [shap_values[i] for i in order]
    ax.barh([features[i] for i in order], values, color=[HIGHLIGHT if v > 0 else "#1f77b4" for v in values])
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("SHAP value (log rate ratio; > 0 raises the rate)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def pm25(rows: pd.DataFrame, guideline: float, title: str) -> bytes:
    """Annual mean PM2.5 per period against the guideline level."""
    rows = rows.sort_values("period")
    fig, (ax,) = _figure(5.0, 2.4, SIZE)
    ax.bar(rows["period"].astype(str), rows["pm25_mean"].fillna(0.0), color="#8c6d31")
    ax.axhline(guideline, color=HIGHLIGHT, linestyle="--", linewidth=1.0, label=f"guideline {guideline:g} ug/m3")
    ax.legend(fontsize=7, loc="best")
    ax.set_ylabel("PM2.5 (ug/m3)")
    ax.set_title(title, fontsize=9)
    return _png(fig)
