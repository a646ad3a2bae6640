"""CXR classifier networks: any timm architecture with one input channel, plus a small CNN for the CPU demo.

`epiatlas_cxr_small` is registered in timm's model registry, so the CPU demo and a densenet121 GPU run go
through the same `timm.create_model` path. Weights come only from local files: timm's pretrained loader with a
`file` override (first convolution adapted to one channel, head re-initialised) or an epiatlas checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES

CHECKPOINT_FORMAT = "epiatlas-cxr-classifier/1"
SMALL_WIDTHS = (16, 32, 64, 128)


class SmallCxrNet(nn.Module):
    """Four conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool), global average pooling, linear head.

    About 98k parameters; a 128 px image ends as an 8 x 8 map in `stages[-1]` (the Grad-CAM layer).
    """

    def __init__(self, num_classes: int = 4, in_chans: int = 1, widths: tuple[int, ...] = SMALL_WIDTHS, **_: Any):
        super().__init__()
        blocks, previous = [], in_chans
        for width in widths:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(previous, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=False),
                    nn.MaxPool2d(2),
                )
            )
            previous = width
        self.stages = nn.Sequential(*blocks)
        self.num_features = previous
        self.num_classes = num_classes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = [
            {"num_chs": w, "reduction": 2 ** (i + 1), "module": f"stages.{i}"} for i, w in enumerate(widths)
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map [N, C, H/16, W/16]."""
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooled features, or logits unless `pre_logits`."""
        pooled = self.global_pool(x).flatten(1)
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes]."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The classification head (timm convention)."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh head for `num_classes` classes (timm convention; pooling is always average)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


default_cfgs = generate_default_cfgs(
    {
        "epiatlas_cxr_small": {
            "url": "",
            "num_classes": len(CLASSES),
            "input_size": (1, 128, 128),
            "pool_size": (8, 8),
            "mean": (0.5,),
            "std": (0.25,),
            "first_conv": "stages.0.0",
            "classifier": "fc",
        }
    }
)


@register_model
def epiatlas_cxr_small(pretrained: bool = False, **kwargs: Any) -> SmallCxrNet:
    """timm entry point of the small CPU-demo CXR network."""
    return build_model_with_cfg(SmallCxrNet, "epiatlas_cxr_small", pretrained, **kwargs)


def build_model(
    arch: str,
    num_classes: int = len(CLASSES),
    checkpoint: Path | None = None,
    pretrained: Path | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """A timm `arch` with one input channel; weights from an epiatlas `checkpoint` or local `pretrained` file.

    Nothing is ever downloaded: without a file the weights are freshly initialised (seed torch first).
    With `image_size`, a checkpoint trained at another size is refused.
    """
    if not timm.is_model(arch):
        raise ImagingError(f"unknown architecture {arch!r}: use a timm model name such as densenet121 or "
                           f"resnet18, or epiatlas_cxr_small for the CPU demo")  # fmt: skip
    if pretrained is not None:
        try:
            return timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=_local_weights(arch, pretrained),
                                     in_chans=1, num_classes=num_classes)  # fmt: skip
        except (RuntimeError, KeyError, ValueError) as e:
            raise ImagingError(f"pretrained_checkpoint {pretrained} does not fit {arch}: {e}") from e
    model = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=num_classes)
    if checkpoint is not None:
        load_weights(model, arch, checkpoint, image_size)
    return model


def _local_weights(arch: str, path: Path) -> dict[str, Any]:
    """timm pretrained-cfg overlay that loads the weights of `path` (no URL, no hub) as the file describes them.

    The input channels and class count are read off the file's first convolution and head, so timm adapts
    the stem to one channel (RGB weights summed) and drops a head of another size.
    """
    _require_file(path, "pretrained_checkpoint")
    try:
        state = timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors alike for a damaged file
        raise ImagingError(f"pretrained_checkpoint {path} cannot be read as a torch file ({e})") from e
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not cfg.first_conv or not cfg.classifier:
        raise ImagingError(f"{arch} has no pretrained configuration in timm: local weights cannot be adapted")
    first = cfg.first_conv if isinstance(cfg.first_conv, str) else cfg.first_conv[0]
    head = cfg.classifier if isinstance(cfg.classifier, str) else cfg.classifier[0]
    if f"{first}.weight" not in state:
        raise ImagingError(f"pretrained_checkpoint {path} has no {first}.weight: it is not a {arch} state dict")
    classes = state[f"{head}.weight"].shape[0] if f"{head}.weight" in state else cfg.num_classes
    input_size = (state[f"{first}.weight"].shape[1], *cfg.input_size[1:])
    return {"state_dict": state, "url": "", "hf_hub_id": None, "input_size": input_size, "num_classes": classes}


def load_weights(model: nn.Module, arch: str, checkpoint: Path, image_size: int | None = None) -> None:
    """Load an epiatlas checkpoint (or a bare state dict) into `model`, which must be the same `arch`."""
    _require_file(checkpoint, "checkpoint")
    try:
        stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors alike for a damaged file
        raise ImagingError(f"checkpoint {checkpoint} cannot be read as a torch file ({e}); "
                           f"give a file written by save_checkpoint") from e  # fmt: skip
    if isinstance(stored, dict) and stored.get("format") == CHECKPOINT_FORMAT:
        if stored["arch"] != arch:
            raise ImagingError(f"checkpoint {checkpoint} holds a {stored['arch']} model, not {arch}: "
                               f"set arch: {stored['arch']}")  # fmt: skip
        if tuple(stored["classes"]) != CLASSES:
            raise ImagingError(f"checkpoint {checkpoint} was trained on classes {stored['classes']}, not {CLASSES}")
        if image_size is not None and stored["image_size"] != image_size:
            raise ImagingError(f"checkpoint {checkpoint} was trained on {stored['image_size']} px images, not "
                               f"{image_size}: set image_size: {stored['image_size']}")  # fmt: skip
        stored = stored["state_dict"]
    try:
        model.load_state_dict(stored, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ImagingError(f"checkpoint {checkpoint} does not fit {arch} with one input channel and "
                           f"{len(CLASSES)} classes: {str(e)[:400]}") from e  # fmt: skip


def freeze_backbone(model: nn.Module) -> list[nn.Parameter]:
    """Feature extraction: freeze every parameter except the classifier head's; return the trainable ones."""
    head = {id(p) for p in model.get_classifier().parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head)
    return [p for p in model.parameters() if p.requires_grad]


def _require_file(path: Path, setting: str) -> None:
    if not Path(path).is_file():
        raise ImagingError(f"{setting} {path} is not a file: give the path of a local weights file")
