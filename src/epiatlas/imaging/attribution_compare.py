"""One figure comparing attribution methods on one image: Grad-CAM, LRP, occlusion and a contrastive map."""

from __future__ import annotations

import copy

import torch
from torch import nn

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.gradcam import gradcam, target_layer
from epiatlas.imaging.overlays import draw_overlay
from epiatlas.models.plots import SYNTHETIC_CAPTION, Size, _figure, _png

CONTRAST = ("bacterial", "viral")
"""Classes of the contrastive map: Grad-CAM of the first minus Grad-CAM of the second."""


def attribution_maps(model: nn.Module, image: torch.Tensor, arch: str, layer: nn.Module | None = None
                     ) -> dict[str, torch.Tensor | str]:  # fmt: skip
    """Maps [H, W] of one image [1, H, W] for the predicted class: gradcam, lrp (or a str saying why none),
    occlusion, and contrastive; plus 'predicted' (the class name). Signed maps are scaled to [-1, 1].

    References
    ----------
    Bach et al., On pixel-wise explanations for non-linear classifier decisions by layer-wise relevance
    propagation, PLoS ONE 10 (2015) e0130140. Zeiler and Fergus, Visualizing and understanding convolutional
    networks, ECCV 2014 (occlusion).
    """
    if image.ndim != 3 or image.shape[0] != 1:
        raise ImagingError(f"attribution_maps needs one image [1, H, W]; got shape {tuple(image.shape)}")
    layer = target_layer(model, arch) if layer is None else layer
    device = next(model.parameters()).device
    batch = image[None].to(device)
    cam = gradcam(model, layer, batch)
    predicted = int(cam.targets[0])
    first, second = (gradcam(model, layer, batch, target=CLASSES.index(c)) for c in CONTRAST)
    contrast = _upsample(first.raw - second.raw, image.shape[-2:])
    return {"predicted": CLASSES[predicted], "gradcam": cam.normalised[0], "lrp": _lrp(model, batch, predicted, arch),
            "occlusion": _signed_unit(_occlusion(model, batch, predicted)), "contrastive": _signed_unit(contrast)}


def compare_attributions(model: nn.Module, image: torch.Tensor, arch: str, layer: nn.Module | None = None,
                         size: Size = "full", synthetic: bool = False) -> bytes:
    """PNG of the image and its Grad-CAM, LRP, occlusion and contrastive (bacterial minus viral) maps side by side.

    A method the architecture does not support gets a panel saying so instead of a map.
    """
    maps = attribution_maps(model, image, arch, layer)
    fig, axes = _figure(15.0, 3.6, size, columns=5)
    draw_overlay(axes[0], image, None, f"{arch}: predicted {maps['predicted']}")
    draw_overlay(axes[1], image, maps["gradcam"], f"Grad-CAM ({maps['predicted']})")
    signed = {"cmap": "RdBu_r", "limits": (-1.0, 1.0)}
    if isinstance(maps["lrp"], str):
        axes[2].text(0.5, 0.5, maps["lrp"], ha="center", va="center", wrap=True, fontsize=8)
        axes[2].set_axis_off()
    else:
        draw_overlay(axes[2], image, maps["lrp"], "LRP (epsilon rule)", **signed)
    draw_overlay(axes[3], image, maps["occlusion"], "Occlusion (score drop)", **signed)
    draw_overlay(axes[4], image, maps["contrastive"], f"Grad-CAM {CONTRAST[0]} minus {CONTRAST[1]}", **signed)
    if synthetic:
        fig.text(0.5, 0.01, SYNTHETIC_CAPTION, ha="center", va="bottom", fontsize=8, color="#b00020")
    return _png(fig)


def _lrp(model: nn.Module, batch: torch.Tensor, target: int, arch: str) -> torch.Tensor | str:
    """captum LRP relevance [H, W] scaled to [-1, 1], or why captum cannot propagate through `arch`."""
    from captum.attr import LRP

    clone = copy.deepcopy(model).eval()  # captum attaches rules and hooks to the modules it walks
    try:
        relevance = LRP(clone).attribute(batch.clone().requires_grad_(True), target=target)
    except TypeError as e:
        kind = str(e).split("'")[1] if "'" in str(e) else "a module"
        return f"LRP not available:\ncaptum has no LRP rule\nfor {kind.rsplit('.', 1)[-1]}\nin {arch}"
    return _signed_unit(relevance.detach()[0, 0])


def _occlusion(model: nn.Module, batch: torch.Tensor, target: int) -> torch.Tensor:
    """captum Occlusion [H, W]: drop of the class score when a square patch is set to the image median."""
    from captum.attr import Occlusion

    side = batch.shape[-1]
    window = max(2, side // 8)
    with torch.no_grad():
        attribution = Occlusion(model).attribute(batch, sliding_window_shapes=(1, window, window),
                                                 strides=(1, max(1, window // 2), max(1, window // 2)),
                                                 baselines=float(batch.median()), target=target,
                                                 perturbations_per_eval=16)  # fmt: skip
    return attribution[0, 0]


def _upsample(raw: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Raw maps [1, h, w] bilinearly upsampled to [H, W] (signs kept)."""
    return nn.functional.interpolate(raw[:, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


def _signed_unit(values: torch.Tensor) -> torch.Tensor:
    """`values` divided by their largest magnitude (all zero stays zero)."""
    scale = values.abs().max()
    return values / scale if scale > 0 else torch.zeros_like(values)
