"""Figures of the models as PNG bytes: forest plot, PDP/ICE grid, SHAP beeswarm, choropleth maps.

Each function draws on its own matplotlib `Figure` with the Agg canvas (no pyplot, no display, no global
state) and returns the PNG; `size="preview"` gives a small image for Dagster asset metadata. The same inputs
give the same bytes (no timestamp or software version in the PNG).
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from epiatlas.errors import ModelError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Size = Literal["full", "preview"]
DPI: dict[str, int] = {"full": 100, "preview": 55}
SYNTHETIC_CAPTION = "SYNTHETIC DATA - not real patients or regions"
MIN_RATIO_SPAN = 1.1  # a PDP panel's rate-ratio axis spans at least 1/1.1 .. 1.1
GLM_COLOR, GBM_COLOR, ICE_COLOR = "#d95f02", "#1b6ca8", "#9ecae1"


def forest_plot(coefficients: pd.DataFrame, title: str = "Rate ratios with 95% CI", size: Size = "full") -> bytes:
    """Forest plot of rate ratios (log axis, line at 1); rows in the frame's order, top to bottom.

    Parameters
    ----------
    coefficients : term, rate_ratio, ci_low, ci_high (e.g. `glm_coefficients` without the intercept).
    """
    _require(coefficients, ["term", "rate_ratio", "ci_low", "ci_high"], "coefficients")
    n = len(coefficients)
    fig, (ax,) = _figure(7.0, 1.2 + 0.38 * n, size)
    y = np.arange(n)[::-1]
    ratio = coefficients["rate_ratio"].to_numpy(float)
    low, high = coefficients["ci_low"].to_numpy(float), coefficients["ci_high"].to_numpy(float)
    ax.hlines(y, low, high, color=GLM_COLOR, linewidth=2)
    ax.plot(ratio, y, "o", color="black", markersize=5)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    _ratio_axis(ax, "x")
    ax.set_yticks(y, coefficients["term"].astype(str).tolist())
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("rate ratio (log scale)")
    ax.set_title(title)
    for yi, r, lo, hi in zip(y, ratio, low, high):
        ax.annotate(f"{r:.2f} ({lo:.2f}-{hi:.2f})", (1.01, yi), xycoords=("axes fraction", "data"), va="center",
                    fontsize=8)  # fmt: skip
    return _png(fig)


def pdp_grid(pdp: pd.DataFrame, columns: int = 3, title: str | None = None, size: Size = "full") -> bytes:
    """One panel per feature: GBM partial dependence, ICE 10-90% band and median, GLM line; log rate-ratio axis.

    Parameters
    ----------
    pdp : `gbm_partial_dependence` rows of one outcome (feature, grid_value, reference_value, rate_ratio,
        ice_p10, ice_p50, ice_p90, glm_rate_ratio).
    columns : panels per row.
    """
    _require(pdp, ["feature", "grid_value", "rate_ratio", "ice_p10", "ice_p50", "ice_p90", "glm_rate_ratio"], "pdp")
    features = list(dict.fromkeys(pdp["feature"]))
    columns = min(columns, len(features))
    rows = -(-len(features) // columns)
    fig, axes = _figure(3.2 * columns, 2.6 * rows + 0.6, size, rows=rows, columns=columns)
    for ax in axes[len(features):]:
        ax.set_visible(False)
    for ax, feature in zip(axes, features):
        curve = pdp[pdp["feature"] == feature]
        x = curve["grid_value"].to_numpy(float)
        ax.fill_between(x, curve["ice_p10"], curve["ice_p90"], color=ICE_COLOR, alpha=0.6, label="ICE 10-90%")
        ax.plot(x, curve["ice_p50"], color=GBM_COLOR, linestyle=":", linewidth=1.2, label="ICE median")
        ax.plot(x, curve["rate_ratio"], color=GBM_COLOR, linewidth=2, label="GBM partial dependence")
        if curve["glm_rate_ratio"].notna().any():
            ax.plot(x, curve["glm_rate_ratio"], color=GLM_COLOR, linestyle="--", linewidth=1.5, label="GLM")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        if "reference_value" in curve.columns:
            ax.axvline(curve["reference_value"].iloc[0], color="grey", linestyle=":", linewidth=0.8)
        _ratio_axis(ax, "y")
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, 1 / MIN_RATIO_SPAN), max(high, MIN_RATIO_SPAN))  # do not magnify flat curves
        ax.set_title(str(feature), fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in axes[::columns]:
        ax.set_ylabel("rate ratio vs median", fontsize=8)
    legend = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97 if title else 1))
    return _png(fig)


def shap_beeswarm(
    shap: pd.DataFrame, max_features: int = 15, max_points: int = 3000, title: str | None = None, size: Size = "full"
) -> bytes:
    """SHAP summary: one row of points per feature (most important on top), colour = feature value rank.

    Parameters
    ----------
    shap : `gbm_shap` rows (feature, feature_value, shap_value) of one outcome.
    max_features : features shown, by mean |SHAP|.
    max_points : points drawn per feature (an evenly spaced subset of the rows, so the picture is reproducible).
    """
    _require(shap, ["feature", "feature_value", "shap_value"], "shap")
    importance = shap.groupby("feature", sort=False)["shap_value"].apply(lambda s: s.abs().mean())
    shown = importance.sort_values(ascending=False, kind="stable").index[:max_features].tolist()
    fig, (ax,) = _figure(7.5, 1.0 + 0.42 * len(shown), size)
    for row, feature in enumerate(reversed(shown)):
        part = shap[shap["feature"] == feature]
        pick = np.unique(np.linspace(0, len(part) - 1, min(max_points, len(part))).astype(int))
        values = part["shap_value"].to_numpy(float)[pick]
        colour = part["feature_value"].rank(pct=True).to_numpy(float)[pick]
        points = ax.scatter(values, row + _swarm_offsets(values), c=colour, cmap="coolwarm", vmin=0, vmax=1, s=6,
                            linewidths=0, rasterized=True)  # fmt: skip
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(np.arange(len(shown)), list(reversed(shown)))
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_xlabel("SHAP value (effect on log rate ratio)")
    if shown:
        bar = fig.colorbar(points, ax=ax, ticks=[0, 1], fraction=0.04, pad=0.02)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def _swarm_offsets(values: np.ndarray, bins: int = 60, width: float = 0.4) -> np.ndarray:
    """Vertical offsets that spread points sharing an x bin symmetrically, wider where they are denser."""
    if len(values) == 0:
        return values
    span = np.ptp(values) or 1.0
    bin_of = np.minimum(((values - values.min()) / span * bins).astype(int), bins - 1)
    order = np.argsort(bin_of, kind="stable")  # input order within a bin: a cloud, not a chevron
    rank = np.empty(len(values), dtype=float)
    counts = np.bincount(bin_of, minlength=bins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(values)) - starts[bin_of[order]]
    # alternate above and below the centre line: 0, +1, -1, +2, -2, ...
    side = np.where(rank % 2 == 0, -1.0, 1.0) * np.ceil(rank / 2)
    return side * width / max(counts.max() / 2, 1.0)


def choropleth(
    regions: pd.DataFrame,
    values: pd.DataFrame,
    column: str,
    title: str,
    label: str | None = None,
    center: float | None = None,
    synthetic: bool = False,
    size: Size = "full",
) -> bytes:
    """Map of one value per region; regions without a value (e.g. suppressed) are grey and said so.

    Parameters
    ----------
    regions : region_id and geometry (a GeoDataFrame, or WKB bytes in EPSG:4326 as in the `regions` table).
    values : region_id and `column`, at most one row per region (filter to one period first).
    center : value at the middle of a diverging colour scale (1 for the SHR, 0 for residuals); sequential if None.
    synthetic : print a "SYNTHETIC DATA" caption under the map.
    """
    import geopandas as gpd
    from matplotlib.colors import TwoSlopeNorm

    _require(regions, ["region_id", "geometry"], "regions")
    _require(values, ["region_id", column], "values")
    repeated = values["region_id"][values["region_id"].duplicated()].unique()
    if len(repeated):
        raise ModelError(f"values has several rows for region(s) {list(repeated[:5])}: filter to one period first")
    geometry = regions["geometry"] if isinstance(regions, gpd.GeoDataFrame) else gpd.GeoSeries.from_wkb(regions["geometry"].map(bytes))
    crs = regions.crs if isinstance(regions, gpd.GeoDataFrame) else "EPSG:4326"
    shapes = gpd.GeoDataFrame({"region_id": regions["region_id"].to_numpy()}, geometry=geometry.to_numpy(), crs=crs)
    shapes = shapes.merge(values[["region_id", column]], on="region_id", how="left")
    known = shapes[column].notna()
    fig, (ax,) = _figure(8.0, 6.0, size)
    style: dict[str, object] = {"cmap": "YlOrRd"}
    if center is not None and known.any():
        # 2nd-98th percentile so one extreme region does not wash out the rest; each side scaled on its own, so
        # a ratio (0 < x, centre 1) and a residual (centre 0) both keep their real range.
        low, high = np.quantile(shapes.loc[known, column].to_numpy(float), [0.02, 0.98])
        low, high = min(low, center - 1e-9), max(high, center + 1e-9)
        style = {"cmap": "RdBu_r", "norm": TwoSlopeNorm(vcenter=center, vmin=low, vmax=high)}
    if known.any():
        shapes[known].plot(column=column, ax=ax, linewidth=0.1, edgecolor="white", legend=True,
                           legend_kwds={"label": label or column, "shrink": 0.6}, **style)  # fmt: skip
    if (~known).any():
        shapes[~known].plot(ax=ax, color="lightgrey", linewidth=0.1, edgecolor="white")
        _caption(ax, f"grey: no value ({int((~known).sum())} regions)", 0.0, "left", color="dimgrey")
    if synthetic:
        _caption(ax, SYNTHETIC_CAPTION, 1.0, "right", color="firebrick", weight="bold")
    ax.set_axis_off()
    ax.set_title(title)
    return _png(fig)


def _caption(ax: Axes, text: str, x: float, ha: str, **style: object) -> None:
    """A line of text just under the axes, at axes fraction `x`."""
    ax.annotate(text, (x, 0.0), xycoords="axes fraction", xytext=(0, -12), textcoords="offset points", ha=ha,
                va="top", fontsize=8, **style)  # fmt: skip


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """ModelError naming the missing columns of the frame given as `name`, or an empty frame."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ModelError(f"{name} frame lacks column(s) {missing} needed for the plot; it has {list(frame.columns)}")
    if frame.empty:
        raise ModelError(f"{name} frame has no rows to plot")


def _ratio_axis(ax: Axes, which: Literal["x", "y"]) -> None:
    """Log scale for a rate-ratio axis with plain tick labels (0.5, 1, 1.5) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

    ax.set_xscale("log") if which == "x" else ax.set_yscale("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(MaxNLocator(nbins=6))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(NullLocator())


def _figure(width: float, height: float, size: Size, rows: int = 1, columns: int = 1) -> tuple[Figure, np.ndarray]:
    """A Figure on the Agg canvas and its rows x columns Axes as a flat array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI[size])
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, columns, squeeze=False).ravel()


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without metadata that would change between runs."""
    buffer = BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()
