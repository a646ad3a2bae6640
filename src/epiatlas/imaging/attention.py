"""Where a classifier looks: per-image Grad-CAM summaries on the model's device, phantom truth scores, and the
model-level shortcut warning; `explain` runs inference, Grad-CAM and summaries in one pass over a data set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.gradcam import gradcam
from epiatlas.imaging.inference import PROBABILITY_COLUMNS, loader, place_model
from epiatlas.imaging.lungs import lung_fields
from epiatlas.imaging.device import resolve_device
from epiatlas.imaging.settings import Precision

BORDER_FRACTION = 0.12
"""Width of the border band (where burned-in text markers sit), as a fraction of each image side."""
SUMMARY_COLUMNS = ["has_heat", "lung_area", "lung_share", "border_share", "peak_row", "peak_col", "left_share",
                   "entropy"]  # fmt: skip


def attention_summary(normalised_maps: torch.Tensor, lung_masks: torch.Tensor) -> pd.DataFrame:
    """One row per map [N, H, W] (>= 0) with its lung mask [N, H, W]: where the positive heat lies.

    has_heat: the map has positive heat (else the shares and entropy are NaN); lung_area: mask share of the
    image; lung_share / border_share / left_share: heat share inside the lung mask / the outer band of
    BORDER_FRACTION of each side / the image's left half (the patient's right on a PA film); peak_row,
    peak_col: pixel of maximal heat; entropy: Shannon entropy of the heat as a distribution over pixels divided
    by log(H * W) (0 = one pixel, 1 = uniform). Computed on the maps' device, one transfer per batch.
    """
    if normalised_maps.ndim != 3 or lung_masks.shape != normalised_maps.shape:
        raise ImagingError(f"attention_summary needs maps [N, H, W] and lung masks of the same shape; got "
                           f"{tuple(normalised_maps.shape)} and {tuple(lung_masks.shape)}")  # fmt: skip
    _, h, w = normalised_maps.shape
    heat = normalised_maps.float().clamp_min(0.0)
    total = heat.sum(dim=(1, 2))
    has_heat = total > 0
    p = heat / torch.where(has_heat, total, torch.ones_like(total))[:, None, None]
    masks = lung_masks.to(device=heat.device, dtype=torch.bool)
    entropy = -torch.where(p > 0, p * p.clamp_min(1e-30).log(), torch.zeros_like(p)).sum(dim=(1, 2))
    peak = heat.flatten(1).argmax(dim=1)
    nan = torch.full_like(total, math.nan)
    columns = {
        "has_heat": has_heat.float(),
        "lung_area": masks.float().mean(dim=(1, 2)),
        "lung_share": torch.where(has_heat, (p * masks).sum(dim=(1, 2)), nan),
        "border_share": torch.where(has_heat, (p * border_band(h, w, heat.device)).sum(dim=(1, 2)), nan),
        "peak_row": (peak // w).float(),
        "peak_col": (peak % w).float(),
        "left_share": torch.where(has_heat, (p.sum(dim=1) * _left_weights(w, heat.device)).sum(dim=1), nan),
        "entropy": torch.where(has_heat, entropy / math.log(h * w), nan),
    }
    values = torch.stack(list(columns.values()), dim=1).cpu().numpy()
    frame = pd.DataFrame(values, columns=SUMMARY_COLUMNS)
    return frame.astype({"has_heat": bool, "peak_row": np.int64, "peak_col": np.int64})


def _left_weights(w: int, device: torch.device) -> torch.Tensor:
    """Weight of each column in the image's left half: 1 left of the centre, 1/2 for a centre column."""
    weights = torch.zeros(w, device=device)
    weights[: w // 2] = 1.0
    if w % 2:
        weights[w // 2] = 0.5
    return weights


def border_band(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool [h, w] mask of the outer BORDER_FRACTION of each side (at least one pixel)."""
    bh, bw = max(1, round(h * BORDER_FRACTION)), max(1, round(w * BORDER_FRACTION))
    band = torch.ones(h, w, dtype=torch.bool, device=device)
    band[bh : h - bh, bw : w - bw] = False
    return band


def pointing_game(maps: torch.Tensor, lesion_masks: torch.Tensor, tolerance_px: int = 0) -> float:
    """Share of images with a lesion whose heat peak lies on the lesion or within `tolerance_px` (square) of it.

    Parameters
    ----------
    maps : [N, H, W] heat maps; lesion_masks : [N, H, W] bool true lesion masks (images without one are skipped).
    tolerance_px : Chebyshev distance in pixels a peak may lie off the lesion and still count as a hit.

    References
    ----------
    Zhang et al., Top-down neural attention by excitation backprop, IJCV 126 (2018) 1084-1102.
    """
    lesions = lesion_masks.to(device=maps.device, dtype=torch.float32)
    present = lesions.flatten(1).any(dim=1)
    if not bool(present.any()):
        raise ImagingError("pointing_game: no image has a lesion mask; score images with findings only")
    if tolerance_px > 0:
        lesions = nn.functional.max_pool2d(lesions[:, None], 2 * tolerance_px + 1, stride=1, padding=tolerance_px)[:, 0]
    peak = maps.flatten(1).argmax(dim=1)
    hits = lesions.flatten(1).gather(1, peak[:, None])[:, 0] > 0
    return float(hits[present].float().mean())


def lesion_mass_share(maps: torch.Tensor, lesion_masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive heat inside its true lesion mask, [N] (NaN where a map has no heat)."""
    heat = maps.float().clamp_min(0.0)
    total = heat.sum(dim=(1, 2))
    inside = (heat * lesion_masks.to(device=heat.device, dtype=torch.float32)).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp_min(1e-30), torch.full_like(total, math.nan))


def off_lung(summaries: pd.DataFrame, threshold: float = 0.3) -> pd.Series:
    """Per image: heat mostly off the lungs (border share above `threshold`, or a lung share below the lung area)."""
    return summaries["has_heat"] & ((summaries["border_share"] > threshold) |
                                    (summaries["lung_share"] < summaries["lung_area"]))  # fmt: skip


@dataclass(frozen=True)
class ShortcutVerdict:
    """Model-level shortcut verdict with its evidence (means over images with heat)."""

    flagged: bool
    judged: bool
    reason: str
    n_images: int
    mean_border_share: float
    mean_lung_share: float
    mean_lung_area: float
    share_off_lung: float
    threshold: float


def shortcut_warning(summaries: pd.DataFrame, threshold: float = 0.3, min_images: int = 20) -> ShortcutVerdict:
    """Flag a model whose attention sits off the lungs: mean border share above `threshold`, or a mean lung
    share below the mean lung area (less heat on the lungs than a uniform map would put there).

    With fewer than `min_images` images with heat nothing is judged (flagged False, judged False, reason says so).
    """
    missing = sorted(set(SUMMARY_COLUMNS) - set(summaries.columns))
    if missing:
        raise ImagingError(f"shortcut_warning needs attention_summary rows; columns {missing} are missing")
    heated = summaries[summaries["has_heat"]]
    n = len(heated)
    border, lung, area = (float(heated[c].mean()) if n else math.nan
                          for c in ("border_share", "lung_share", "lung_area"))  # fmt: skip
    share = float(off_lung(heated, threshold).mean()) if n else math.nan
    evidence = dict(n_images=n, mean_border_share=border, mean_lung_share=lung, mean_lung_area=area,
                    share_off_lung=share, threshold=threshold)  # fmt: skip
    if n < min_images:
        return ShortcutVerdict(False, False, f"not judged: {n} images with Grad-CAM heat, fewer than {min_images}",
                               **evidence)  # fmt: skip
    reasons = []
    if border > threshold:
        reasons.append(f"mean heat share in the border band {border:.2f} > {threshold:.2f} (where text markers sit)")
    if lung < area:
        reasons.append(f"mean heat share on the lungs {lung:.2f} < their area share {area:.2f}")
    if reasons:
        return ShortcutVerdict(True, True, "possible shortcut: " + "; ".join(reasons), **evidence)
    return ShortcutVerdict(False, True, f"attention on the lungs: heat share {lung:.2f} on {area:.2f} of the image, "
                                        f"{border:.2f} in the border band", **evidence)  # fmt: skip


def explain(
    model: nn.Module,
    layer: nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    precision: Precision = "auto",
    target: int | None = None,
) -> pd.DataFrame:
    """Predictions and Grad-CAM summaries of every item in one forward+backward pass per batch.

    Columns: index, predicted_class, p_* (as `predict`), explained_class, raw_peak (largest raw Grad-CAM value),
    lung_mask_source ('manifest', 'lung_fields', or 'none' with NaN lung columns where no lung field is found),
    then SUMMARY_COLUMNS. Items without a lung mask (no `lung_mask` or has_mask False) get `lung_fields`.
    """
    device = resolve_device("auto") if device is None else torch.device(device)
    place_model(model, device)
    parts = []
    for batch in loader(dataset, batch_size, num_workers, device):
        masks, source = _lung_masks(batch)
        cam = gradcam(model, layer, batch["image"], target, precision)
        frame = attention_summary(cam.normalised, masks.to(device, non_blocking=True))
        frame.loc[source == "none", ["lung_area", "lung_share"]] = math.nan
        probs, targets = cam.probs.cpu().numpy(), cam.targets.cpu().numpy()
        head = pd.DataFrame({"index": batch["index"].numpy().astype(np.int64),
                             "predicted_class": np.asarray(CLASSES)[probs.argmax(axis=1)]})  # fmt: skip
        head[PROBABILITY_COLUMNS] = probs
        head["explained_class"] = np.asarray(CLASSES)[targets]
        head["raw_peak"] = cam.raw.flatten(1).amax(dim=1).cpu().numpy()
        head["lung_mask_source"] = source
        parts.append(pd.concat([head, frame], axis=1))
    if not parts:
        raise ImagingError("explain: the data set is empty")
    return pd.concat(parts, ignore_index=True).sort_values("index", kind="stable", ignore_index=True)


def _lung_masks(batch: dict) -> tuple[torch.Tensor, np.ndarray]:
    """Lung masks of a batch [N, H, W] and their source: the item's mask, else `lung_fields` of its image."""
    images = batch["image"]
    n, _, h, w = images.shape
    given = batch.get("has_mask", torch.zeros(n, dtype=torch.bool))
    masks = batch["lung_mask"].clone() if "lung_mask" in batch else torch.zeros(n, h, w, dtype=torch.bool)
    source = np.where(given.numpy(), "manifest", "lung_fields").astype(object)
    for i in torch.nonzero(~given).flatten().tolist():
        try:
            masks[i] = torch.from_numpy(lung_fields(images[i]))
        except ImagingError:
            source[i] = "none"
    return masks, source
