"""Batched Grad-CAM on the last convolutional stage: one forward and one head-only backward that keep the logits.

The backbone runs without autograd (as fast as inference). A forward hook on the target layer swaps its output
for a detached leaf that requires grad and switches recording on for the rest of the forward, so the gradient
of the class score is taken with respect to exactly the activation the head reads (in-place activations after
the layer act on a copy), parameter gradients are never touched, frozen backbones work, and the same forward
pass yields the predictions. Validated against captum's LayerGradCam and a hand-split forward in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.inference import autocast, to_device
from epiatlas.imaging.settings import Precision

_DEFAULT_LAYERS = {"densenet": "features", "resnet": "layer4", "resnext": "layer4", "wide_resnet": "layer4",
                   "epiatlas_cxr_small": "stages.-1"}  # fmt: skip


@dataclass(frozen=True)
class GradCamBatch:
    """Grad-CAM of one batch, all on the model's device.

    logits/probs [N, K] float32 from the same forward pass; targets [N] the explained class index; raw [N, h, w]
    the class-weighted activation sum at the layer's resolution before ReLU; normalised [N, H, W] its positive
    part upsampled bilinearly to the input size and divided by its per-image maximum (all-zero where none).
    """

    logits: torch.Tensor
    probs: torch.Tensor
    targets: torch.Tensor
    raw: torch.Tensor
    normalised: torch.Tensor


def target_layer(model: nn.Module, arch: str, name: str | None = None) -> nn.Module:
    """The module Grad-CAM reads: `name` (a dotted submodule path) or the last convolutional stage of `arch`.

    densenet* -> `features` (its in-place activations are switched off so the hooked output is the one the head
    reads), resnet*/resnext*/wide_resnet* -> `layer4`, epiatlas_cxr_small -> its last block. Any other
    architecture needs `name` (config `imaging.gradcam_layer`).
    """
    if name is None:
        family = next((f for f in _DEFAULT_LAYERS if arch.startswith(f)), None)
        if family is None:
            raise ImagingError(f"no default Grad-CAM layer for architecture {arch!r}: set imaging.gradcam_layer to "
                               f"the dotted name of its last convolutional stage (e.g. 'layer4' or 'features')")
        name = _DEFAULT_LAYERS[family]
    layer = _submodule(model, name, arch)
    if arch.startswith("densenet"):
        _disable_inplace(layer)
    return layer


def _submodule(model: nn.Module, name: str, arch: str) -> nn.Module:
    """`model`'s submodule at dotted `name`; a negative integer part indexes from the end of a container."""
    module = model
    for part in name.split("."):
        try:
            module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
        except (AttributeError, IndexError, TypeError) as e:
            raise ImagingError(f"Grad-CAM layer {name!r} does not exist in {arch}: set imaging.gradcam_layer to "
                               f"one of its module names (model.named_modules())") from e  # fmt: skip
    if not isinstance(module, nn.Module):
        raise ImagingError(f"Grad-CAM layer {name!r} of {arch} is a {type(module).__name__}, not a module")
    return module


def _disable_inplace(module: nn.Module) -> None:
    """Turn off `inplace` on every submodule that has it (DenseNet's BatchNormAct ReLUs)."""
    for sub in module.modules():
        if getattr(sub, "inplace", False) is True:
            sub.inplace = False


def gradcam(
    model: nn.Module,
    layer: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    precision: Precision = "fp32",
) -> GradCamBatch:
    """Grad-CAM of `images` [N, 1, H, W] for the predicted class, or class `target` (an index or one per image).

    The model is put in eval mode and stays on its device; images are moved there.

    Parameters
    ----------
    model, layer : the classifier and its target layer (see `target_layer`).
    images : float tensor [N, 1, H, W] in [0, 1].
    target : None (predicted class), a class index for all images, or a [N] tensor of indices.
    precision : autocast precision of the forward pass ('auto' = mixed precision on CUDA only).

    References
    ----------
    Selvaraju et al., Grad-CAM: visual explanations from deep networks via gradient-based localization,
    ICCV 2017.
    """
    if images.ndim != 4:
        raise ImagingError(f"gradcam needs a batch [N, 1, H, W]; got shape {tuple(images.shape)}")
    device = next(model.parameters()).device
    model.eval()
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise ImagingError(f"Grad-CAM layer {type(module).__name__} returns {type(output).__name__}, not one "
                               f"feature map: choose a convolutional stage")  # fmt: skip
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        torch.set_grad_enabled(True)  # record from here on only; leaving no_grad below restores the caller's mode
        return leaf.clone()

    handle = layer.register_forward_hook(capture)
    try:
        with torch.no_grad(), autocast(device, precision):
            logits = model(to_device(images, device))
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ImagingError(f"the Grad-CAM layer ran {len(captured)} times in one forward pass; it must run once")
    with torch.enable_grad():  # also under a caller's no_grad
        logits = logits.float()
        targets = _targets(target, logits)
        (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), captured[0])
    activation = captured[0].detach().float()
    raw = (grads.float().mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1)
    logits = logits.detach()
    return GradCamBatch(logits, torch.softmax(logits, dim=1), targets, raw, normalise(raw, images.shape[-2:]))


def _targets(target: int | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """Class index per image: the argmax of `logits`, or `target` broadcast and checked."""
    n, k = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    targets = torch.as_tensor(target, dtype=torch.long, device=logits.device).expand(n).clone()
    if ((targets < 0) | (targets >= k)).any():
        raise ImagingError(f"Grad-CAM target {target} is not a class index 0..{k - 1} ({', '.join(CLASSES[:k])})")
    return targets


def normalise(raw: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Positive part of raw maps [N, h, w], bilinearly upsampled to `size`, divided by each map's maximum."""
    heat = nn.functional.interpolate(raw.clamp_min(0.0)[:, None], size=tuple(size), mode="bilinear",
                                     align_corners=False)[:, 0]  # fmt: skip
    peak = heat.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, heat / peak.clamp_min(torch.finfo(heat.dtype).tiny), torch.zeros_like(heat))
