"""Grad-CAM overlays as PNG bytes: the image in gray with the heat map on top, for the UI and reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from epiatlas.errors import ImagingError
from epiatlas.models.plots import SYNTHETIC_CAPTION, Size, _figure, _png

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HEAT_ALPHA = 0.45


def overlay_png(image: np.ndarray | torch.Tensor, heat: np.ndarray | torch.Tensor, title: str = "",
                size: Size = "full", synthetic: bool = False) -> bytes:
    """PNG of `image` ([H, W] or [1, H, W] in [0, 1]) under `heat` ([H, W] in [0, 1]); same inputs, same bytes.

    `size="preview"` gives a small image for asset metadata; `synthetic` captions the figure as synthetic data.
    """
    fig, (ax,) = _figure(3.6, 3.9, size)
    draw_overlay(ax, image, heat, title)
    if synthetic:
        fig.text(0.5, 0.01, SYNTHETIC_CAPTION, ha="center", va="bottom", fontsize=7, color="#b00020")
    return _png(fig)


def draw_overlay(ax: Axes, image: np.ndarray | torch.Tensor, heat: np.ndarray | torch.Tensor | None,
                 title: str = "", cmap: str = "jet", limits: tuple[float, float] = (0.0, 1.0)) -> None:
    """Draw `image` in gray and `heat` (if any) semi-transparent with `cmap` over `limits` on `ax`, no axes."""
    pixels = as_plane(image)
    ax.imshow(pixels, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if heat is not None:
        values = as_plane(heat)
        if pixels.shape != values.shape:
            raise ImagingError(f"overlay: image {pixels.shape} and heat map {values.shape} differ in size; "
                               f"upsample the map to the image (GradCamBatch.normalised is)")  # fmt: skip
        ax.imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1], alpha=HEAT_ALPHA, interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def as_plane(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """A 2-D float32 numpy copy of an [H, W] or [1, H, W] array or tensor (any device)."""
    values = array.detach().float().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array, np.float32)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise ImagingError(f"overlay: expected one image [H, W] or [1, H, W]; got shape {values.shape}")
    return values
