"""Typed settings of the CXR classifier (architecture, training, augmentation), validated once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class AugmentSettings(BaseModel):
    """CXR-appropriate augmentation: integer shifts and small intensity jitter; no resampling, no flip by default.

    Rotation or scaling with bilinear resampling blurs fine interstitial texture, and a horizontal flip moves
    the heart to the wrong side (laterality matters on a chest film), so neither is offered by default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_shift: int = Field(6, ge=0, le=32, description="Largest integer shift in pixels, each axis, zero-filled.")
    brightness: float = Field(0.05, ge=0.0, le=0.3, description="Additive brightness jitter, uniform in +-value.")
    contrast: float = Field(0.1, ge=0.0, le=0.5, description="Contrast factor about the image mean, 1 +- value.")
    horizontal_flip: bool = Field(False, description="Random left-right flip (off: laterality matters on CXR).")


class TrainSettings(BaseModel):
    """How the CXR classifier is built, trained (or loaded from a checkpoint) and where it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    arch: str = Field(
        "epiatlas_cxr_small",
        min_length=1,
        description="timm architecture, e.g. epiatlas_cxr_small (CPU demo), densenet121, resnet18, resnet50.",
    )
    image_size: int = Field(128, ge=32, le=1024, description="Square input size in pixels.")
    mode: Literal["fine_tune", "feature_extraction"] = Field(
        "fine_tune", description="Train every weight, or freeze all but the classifier head."
    )
    pretrained_checkpoint: Path | None = Field(
        None, strict=False, description="Local file of backbone weights (never downloaded); the head is re-initialised."
    )
    checkpoint: Path | None = Field(
        None, strict=False, description="A trained epiatlas checkpoint to use instead of training (bring your own)."
    )
    retrain: bool = Field(
        False, description="Train again even when the stored checkpoint's training fingerprint matches (inputs same)."
    )
    epochs: int = Field(8, ge=1, le=1000, description="Most training epochs.")
    batch_size: int = Field(32, ge=2, le=4096, description="Images per training step.")
    lr: float = Field(3e-3, gt=0.0, le=1.0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="AdamW weight decay.")
    patience: int = Field(3, ge=1, description="Epochs without a better validation macro AUC before stopping.")
    seed: int = Field(0, ge=0, description="Seed of weights, sampling order and augmentation.")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes (0 = in the main process).")
    threads: int = Field(2, ge=1, le=256, description="torch CPU threads (fixed: results depend on the count).")
    device: Device = Field("auto", description="'auto' picks CUDA when available, else the CPU.")
    precision: Precision = Field(
        "auto", description="'auto': bf16/fp16 autocast on CUDA, fp32 on the CPU; bf16 also works on the CPU."
    )
    balanced_sampling: bool = Field(True, description="Draw classes equally often (seeded weighted sampling).")
    augment: AugmentSettings = Field(default_factory=AugmentSettings, description="Training-time augmentation.")

    @model_validator(mode="after")
    def _compatible(self) -> TrainSettings:
        if self.checkpoint is not None and self.pretrained_checkpoint is not None:
            raise ValueError("give either checkpoint (a trained model) or pretrained_checkpoint (weights to train)")
        if self.checkpoint is not None and self.retrain:
            raise ValueError("retrain needs training: drop checkpoint (a trained model is loaded, never retrained)")
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
        return self
