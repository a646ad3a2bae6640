"""Figures of a regional report as PNG bytes: map with the region highlighted, SHR against the other regions,
trend over periods, SHAP drivers, PM2.5 against the guideline.

Drawn from the public `region_profile` only, on their own Agg `Figure`s (no pyplot), small enough to embed in
an HTML file. Suppressed cells have no value and are drawn as such (grey, or left out and counted).
Speed (2,400 regions a period): the map and ranking are drawn once per period (`PeriodFigures`), each report
drawing only its highlight on top, and every figure is drawn once and cropped rather than twice by savefig.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from epiatlas.models.plots import _figure, _png, _ratio_axis

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HIGHLIGHT, OTHERS, HIDDEN = "#d62728", "#7f7f7f", "#d9d9d9"
SIZE = "full"
MINOR_LABELS = {"0.2", "0.3", "0.5", "2", "3", "5"}  # labelled minor ticks of the log SHR colour bar
PAD_INCHES = 0.15  # as `_png` pads its tight crop
GRID_LABELS = 30  # most row labels of a trend grid (text is what costs time to draw)


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


def _tight_box(fig: Figure) -> tuple[tuple[int, int, int, int], bool]:
    """`_png`'s tight crop of the drawn `fig` padded by PAD_INCHES, in canvas pixels (top, bottom, left, right; it
    may reach past the canvas), and whether everything drawn lies within the canvas."""
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width, height, dpi = fig.bbox.width, fig.bbox.height, fig.dpi
    inside = box.x0 * dpi >= -1 and box.y0 * dpi >= -1 and box.x1 * dpi <= width + 1 and box.y1 * dpi <= height + 1
    box = box.padded(PAD_INCHES)
    return (int(height - box.y1 * dpi), int(np.ceil(height - box.y0 * dpi)), int(box.x0 * dpi),
            int(np.ceil(box.x1 * dpi))), inside  # fmt: skip


def _encode(fig: Figure, box: tuple[int, int, int, int]) -> bytes:
    """The drawn canvas of `fig` within `box` (white where the box reaches past it) as PNG bytes, no metadata."""
    from PIL import Image

    top, bottom, left, right = box
    canvas = np.asarray(fig.canvas.buffer_rgba())
    pixels = np.full((bottom - top, right - left, 4), 255, dtype=np.uint8)
    rows, columns = slice(max(top, 0), min(bottom, canvas.shape[0])), slice(max(left, 0), min(right, canvas.shape[1]))
    pixels[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left] = canvas[rows, columns]
    buffer = BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="png")
    return buffer.getvalue()


def _tight_png(fig: Figure) -> bytes:
    """The PNG `_png` writes, from one draw instead of its two; `_png` itself when something is drawn outside the
    canvas (which `_png` widens the canvas to show)."""
    fig.canvas.draw()
    box, inside = _tight_box(fig)
    return _encode(fig, box) if inside else _png(fig)


class Backdrop:
    """A figure drawn once, on which each report draws only its own few artists (Agg blitting): the pixels of
    drawing the whole figure per report, at the cost of those artists. Cropped as `_png` crops (tight, padded)."""

    def __init__(self, fig: Figure, ax: Axes) -> None:
        fig.canvas.draw()
        ax.set_autoscale_on(False)  # what a report adds lies within the drawn data and never moves the axes
        self._box, _ = _tight_box(fig)
        self._background = fig.canvas.copy_from_bbox(fig.bbox)
        self.fig, self.ax = fig, ax

    def png(self, artists: Callable[[Axes], list[Artist]]) -> bytes:
        """The figure with the artists `artists(ax)` adds drawn on top (and removed again) as PNG bytes."""
        self.fig.canvas.restore_region(self._background)
        added = artists(self.ax)
        for artist in added:
            self.ax.draw_artist(artist)
        png = _encode(self.fig, self._box)
        for artist in added:
            artist.remove()
        return png


class PeriodFigures:
    """The SHR map and ranking of one period, drawn once; every report of the period adds only its regions in red."""

    def __init__(self, shapes: RegionShapes, period_rows: pd.DataFrame, period: int) -> None:
        self.shapes = shapes
        self.visible = _on_log_axis(period_rows.dropna(subset=["shr"]).sort_values(["shr", "region_id"]))
        self._map = Backdrop(*_shr_map(shapes, period_rows.set_index("region_id")["shr"], f"SHR, {period}"))
        hidden = int(period_rows["shr"].isna().sum())
        self._ranking = Backdrop(*_shr_ranking(self.visible, hidden, f"SHR of every region (95% CI), {period}"))

    def region_map(self, highlight: Sequence[str]) -> bytes:
        """The map with the regions `highlight` outlined in red."""
        from matplotlib.collections import PathCollection

        chosen = set(highlight)
        paths = [p for r, p in zip(self.shapes.region_ids, self.shapes.paths, strict=True) if r in chosen]
        return self._map.png(lambda ax: [ax.add_collection(PathCollection(
            paths, facecolors="none", edgecolors=HIGHLIGHT, linewidths=1.5), autolim=False)])  # fmt: skip

    def shr_ranking(self, highlight: Sequence[str]) -> bytes:
        """The ranking with the regions `highlight` in red."""
        mine = self.visible[self.visible["region_id"].isin(list(highlight))]
        return self._ranking.png(lambda ax: [
            ax.vlines(mine.index, mine["shr_lower"], mine["shr_upper"], color=HIGHLIGHT, linewidth=0.6),
            ax.scatter(mine.index, mine["shr"], color=HIGHLIGHT, s=16, zorder=3)])  # fmt: skip


def _shr_map(shapes: RegionShapes, shr: pd.Series, title: str) -> tuple[Figure, Axes]:
    """SHR of every region (grey where hidden or without a value) on a log colour scale, with its colour bar.

    Parameters
    ----------
    shr : SHR by region_id for the period (NaN or absent where the cell is hidden).
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
    bar = fig.colorbar(collection, ax=ax, shrink=0.6, label="SHR (grey: suppressed or no value)")
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
    bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.2g}" if f"{v:.2g}" in MINOR_LABELS else ""))
    x0, y0, x1, y1 = shapes.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return fig, ax


def _on_log_axis(visible: pd.DataFrame) -> pd.DataFrame:
    """`visible` renumbered 0..n-1, an SHR or lower bound of 0 (no cases) raised to the log axis' floor: half the
    smallest positive lower bound."""
    positive = visible["shr_lower"][visible["shr_lower"] > 0]
    floor = float(positive.min()) / 2 if len(positive) else 0.1
    return visible.reset_index(drop=True).assign(shr=visible["shr"].clip(lower=floor).to_numpy(),
                                                 shr_lower=visible["shr_lower"].clip(lower=floor).to_numpy())


def _shr_ranking(visible: pd.DataFrame, hidden: int, title: str) -> tuple[Figure, Axes]:
    """Every visible region's SHR with its CI in grey, sorted; the hidden cells counted below."""
    from matplotlib.ticker import LogLocator

    fig, (ax,) = _figure(5.0, 3.2, SIZE)
    ax.vlines(visible.index, visible["shr_lower"], visible["shr_upper"], color=OTHERS, linewidth=0.6)
    ax.scatter(visible.index, visible["shr"], color=OTHERS, s=4, zorder=3)
    ax.axhline(1.0, color="black", linewidth=0.6, linestyle="--")
    _ratio_axis(ax, "y")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.set_xticks([])
    ax.set_xlabel(f"{len(visible)} regions by SHR (an SHR of 0 at the bottom edge)\n{hidden} suppressed or without "
                  "a value not shown", fontsize=8)
    ax.set_ylabel("SHR (95% CI)")
    ax.set_title(title, fontsize=9)
    return fig, ax


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
    if visible.empty:  # nothing but the reference line: no SHR scale to read
        ax.set_yticks([1.0])
    ax.set_xticks(rows["period"].tolist())
    ax.set_ylabel("SHR (95% CI)")
    ax.set_title(title, fontsize=9)
    return _tight_png(fig)


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
    return _tight_png(fig)


def pm25(rows: pd.DataFrame, guideline: float, title: str) -> bytes:
    """Annual mean PM2.5 per period against the guideline level."""
    rows = rows.sort_values("period")
    fig, (ax,) = _figure(5.0, 2.4, SIZE)
    ax.bar(rows["period"].astype(str), rows["pm25_mean"].fillna(0.0), color="#8c6d31")
    ax.axhline(guideline, color=HIGHLIGHT, linestyle="--", linewidth=1.0, label=f"guideline {guideline:g} ug/m3")
    ax.legend(fontsize=7, loc="best")
    ax.set_ylabel("PM2.5 (ug/m3)")
    ax.set_title(title, fontsize=9)
    return _tight_png(fig)


def trend_grid(history: pd.DataFrame, labels: dict[str, str], title: str) -> bytes:
    """SHR of every region (rows) in every period (columns) on a log colour scale, hidden cells grey: the trend of
    a parent region's many regions in one figure (the same for every period's report)."""
    from matplotlib.colors import LogNorm

    grid = history.pivot_table(index="region_id", columns="period", values="shr", aggfunc="first", dropna=False)
    grid = grid.reindex(columns=sorted(history["period"].unique()))
    values = grid.to_numpy(float)
    known = np.isfinite(values) & (values > 0)
    span = max(float(np.nanquantile(np.abs(np.log(values[known])), 0.98)), 0.1) if known.any() else 1.0
    fig, (ax,) = _figure(5.0, min(1.0 + 0.12 * len(grid), 9.0), SIZE)
    ax.set_facecolor(HIDDEN)
    image = ax.imshow(np.where(known, values, np.nan), aspect="auto", cmap="RdBu_r", interpolation="nearest",
                      norm=LogNorm(np.exp(-span), np.exp(span)))  # fmt: skip
    ax.set_xticks(range(len(grid.columns)), [str(p) for p in grid.columns], fontsize=7)
    step = -(-len(grid) // GRID_LABELS)  # every row labelled up to GRID_LABELS rows, then every step-th
    rows = range(0, len(grid), step)
    ax.set_yticks(rows, [labels.get(grid.index[i], grid.index[i]) for i in rows], fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.6, label="SHR (grey: suppressed or no value)")
    ax.set_title(title, fontsize=9)
    return _tight_png(fig)
