"""The `imaging:` config section: where the images are, how they are split, trained and explained."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from epiatlas.imaging.settings import TrainSettings


class ImagingConfig(BaseModel):
    """Chest X-ray classifier and Grad-CAM summaries; the manifest itself is `sources.cxr_manifest`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = Field(True, description="false switches the imaging group off (the section may stay)")
    image_root: Path = Field(strict=False, description="folder the manifest's image and mask paths are relative to; none may leave it")
    train: TrainSettings = Field(default_factory=TrainSettings, description="classifier, training or checkpoint")
    test_share: float = Field(0.2, gt=0.0, lt=0.5, description="held-out share (patients and duplicates kept whole)")
    val_share: float = Field(0.15, gt=0.0, lt=0.5, description="validation share for early stopping")
    split_seed: int = Field(0, ge=0)
    near_duplicate_bits: int = Field(6, ge=0, le=20, description="pHash Hamming distance of a near duplicate")
    batch_size: int = Field(32, ge=1, le=4096, description="images per inference and Grad-CAM batch")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader workers for inference")
    gradcam_layer: str | None = Field(None, description="module name of the Grad-CAM layer; default per architecture")
    shortcut_border_share: float = Field(0.3, gt=0.0, lt=1.0, description="mean heat share in the border band "
                                         "above which the model is flagged as using a shortcut")  # fmt: skip
    overlays_per_class: int = Field(2, ge=0, le=20, description="overlay examples per predicted class (synthetic only)")

    @model_validator(mode="after")
    def _shares(self) -> ImagingConfig:
        if self.test_share + self.val_share >= 0.7:
            raise ValueError("imaging.test_share + imaging.val_share leave too little for training (keep them < 0.7)")
        return self

    def anchored(self, anchor: callable) -> ImagingConfig:
        """A copy with the image root and checkpoints resolved by `anchor` (relative to the config file)."""
        train = self.train.model_copy(
            update={
                k: anchor(getattr(self.train, k))
                for k in ("checkpoint", "pretrained_checkpoint")
                if getattr(self.train, k) is not None
            }
        )
        return self.model_copy(update={"image_root": anchor(self.image_root), "train": train})
