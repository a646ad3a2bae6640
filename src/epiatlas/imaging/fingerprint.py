"""Reuse of the trained CXR classifier: a fingerprint of everything training depends on, stored with the checkpoint.

Training is bit-reproducible for the same inputs on the same kind of device, so a stored checkpoint whose
fingerprint matches is what training would produce again, and a refresh loads it instead of training. Each
component is hashed on its own, so a retraining can name what changed. The record is a private JSON artifact
next to the checkpoint (same artifact name, suffix json) and names the checkpoint's SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from epiatlas import __version__
from epiatlas.artifacts import Artifact, ArtifactStore
from epiatlas.errors import ImagingError, WarehouseError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.settings import TrainSettings

if TYPE_CHECKING:
    from epiatlas.imaging.training import TrainedClassifier

TRAINING_SPLITS = ("train", "val")
RECORD_FORMAT = 1
TRAINING_CODE_VERSION = 1
"""Bump when a change to training, augmentation, decoding or the models (`epiatlas.imaging.training`, `.dataset`,
`.decode`, `.models`) would train other weights from the same images and settings: stored checkpoints retrain."""
UNFINGERPRINTED = {"arch", "checkpoint", "pretrained_checkpoint", "device", "retrain", "num_workers"}
"""Settings outside the `settings` component: arch and the pretrained weights are components of their own (the
weights by content, not path), the device is resolved into `environment`, retrain forces rather than describes,
and DataLoader workers only decode images (sampling and augmentation run in the main process)."""


def training_frames(images: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The train and val rows of cxr_images in table order, the order training sees them."""
    return {s: images[images["split"] == s].reset_index(drop=True) for s in TRAINING_SPLITS}


@dataclass(frozen=True)
class Fingerprint:
    """SHA-256 per component of what training depends on, and a readable value per component."""

    hashes: dict[str, str]
    values: dict[str, object]

    @property
    def digest(self) -> str:
        """The whole fingerprint: first 16 hex digits of the SHA-256 of the component hashes."""
        return _sha256(self.hashes)[:16]

    def changes(self, stored: Fingerprint) -> list[str]:
        """One phrase per component that differs from `stored`, with the readable values that changed."""
        names = sorted(set(self.hashes) | set(stored.hashes))
        return [_change(n, stored.values.get(n), self.values.get(n))
                for n in names if self.hashes.get(n) != stored.hashes.get(n)]  # fmt: skip


def training_fingerprint(frames: dict[str, pd.DataFrame], settings: TrainSettings) -> Fingerprint:
    """Fingerprint of training `settings.arch` on `frames` (see `training_frames`) on the device it would run on.

    Components: train_images and val_images (pixel SHA-256 and label of each image, in order), settings,
    arch, pretrained_weights (file content), code (epiatlas and training-code versions) and environment
    (torch and timm versions, device kind). Imports torch, not timm: a reused checkpoint loads no model code.
    """
    import torch

    from epiatlas.imaging.device import resolve_device

    device = resolve_device(settings.device)
    kind = f"cuda {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
    parts = {
        **{f"{split}_images": _images_part(frame, split) for split, frame in frames.items()},
        "settings": _part(_flat(settings.model_dump(mode="json", exclude=UNFINGERPRINTED))),
        "arch": _part(settings.arch),
        "pretrained_weights": _part(_file_sha256(settings.pretrained_checkpoint)),
        "code": _part({"epiatlas": __version__, "training_code": TRAINING_CODE_VERSION}),
        "environment": _part({"torch": torch.__version__, "timm": version("timm"), "device": kind}),
    }
    return Fingerprint({k: h for k, (h, _) in parts.items()}, {k: v for k, (_, v) in parts.items()})


@dataclass(frozen=True)
class TrainingRecord:
    """A stored checkpoint's SHA-256, the fingerprint it was trained under, its cxr_model row and history, when
    and by which run it was trained."""

    checkpoint_sha256: str
    fingerprint: Fingerprint
    model: dict[str, object]
    history: list[dict[str, float]]
    train_seconds: float
    trained_at: str
    run_id: str

    def to_json(self) -> bytes:
        """The record as canonical JSON bytes."""
        return json.dumps({"format": RECORD_FORMAT, **asdict(self)}, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TrainingRecord:
        """Parse `to_json` output; ImagingError when it is not a record of this format."""
        try:
            raw = json.loads(data)
            if raw.pop("format", None) != RECORD_FORMAT:
                raise ValueError(f"format is not {RECORD_FORMAT}")
            return cls(**{**raw, "fingerprint": Fingerprint(**raw["fingerprint"])})
        except (ValueError, TypeError, KeyError) as exc:
            raise ImagingError(f"the stored training record is unreadable ({exc}); retraining replaces it") from exc


def model_row(trained: TrainedClassifier, checkpoint_sha256: str, n_train: int, n_val: int) -> dict[str, object]:
    """The cxr_model row of a trained (or loaded) classifier stored under `checkpoint_sha256` (plain Python values)."""
    return {"model_version": checkpoint_sha256[:12], "arch": trained.arch, "device": trained.device,
            "image_size": trained.settings.image_size, "trained": trained.settings.checkpoint is None,
            "epochs_run": len(trained.history), "best_epoch": int(trained.best_epoch) if len(trained.history) else None,
            "val_macro_auc": float(trained.val_macro_auc), "n_train": n_train, "n_val": n_val}  # fmt: skip


def new_record(checkpoint_sha256: str, fingerprint: Fingerprint, model: dict[str, object], history: pd.DataFrame,
               train_seconds: float, run_id: str) -> TrainingRecord:
    """The record of a checkpoint trained now (UTC, to the second) by run `run_id`."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    rows = json.loads(history.to_json(orient="records", double_precision=15))
    return TrainingRecord(checkpoint_sha256, fingerprint, model, rows, round(train_seconds, 3), now, run_id)


def save_record(store: ArtifactStore, name: str, record: TrainingRecord) -> Artifact:
    """Store `record` as the private JSON artifact next to checkpoint `name` (replacing the previous record)."""
    return store.put(name, record.to_json(), kind="training_record", privacy="private", suffix="json")


@dataclass(frozen=True)
class ReuseDecision:
    """The stored record to reuse (None: train), and why."""

    record: TrainingRecord | None
    reason: str

    @property
    def reuse(self) -> bool:
        """True when the stored checkpoint is used without training."""
        return self.record is not None


def reuse_decision(store: ArtifactStore, name: str, fingerprint: Fingerprint, retrain: bool) -> ReuseDecision:
    """Reuse checkpoint `name` when its record's fingerprint equals `fingerprint` and its bytes are the recorded
    ones; otherwise train, saying why (forced, nothing stored, record unreadable, which components changed)."""
    if retrain:
        return ReuseDecision(None, "retraining forced by imaging.train.retrain")
    try:
        record = _stored_record(store, name)
    except ImagingError as exc:
        return ReuseDecision(None, str(exc))
    if record is None:
        return ReuseDecision(None, "no stored checkpoint with a training record")
    changed = fingerprint.changes(record.fingerprint)
    if changed:
        return ReuseDecision(None, "changed since the stored checkpoint was trained: " + "; ".join(changed))
    actual = _checkpoint_sha256(store, name)
    if actual != record.checkpoint_sha256:
        return ReuseDecision(None, f"the stored checkpoint ({(actual or 'none')[:12]}) is not the one its training "
                                   f"record describes ({record.checkpoint_sha256[:12]})")  # fmt: skip
    return ReuseDecision(record, f"fingerprint {fingerprint.digest} unchanged")


def _stored_record(store: ArtifactStore, name: str) -> TrainingRecord | None:
    """The record stored with checkpoint `name`, None when there is none."""
    try:
        path = store.current(name, "json")
    except WarehouseError:
        return None
    return TrainingRecord.from_json(path.read_bytes())


def _checkpoint_sha256(store: ArtifactStore, name: str) -> str | None:
    """SHA-256 of the stored checkpoint's bytes (re-read, not taken from the file name); None when none is stored."""
    try:
        return hashlib.sha256(store.current(name, "pt").read_bytes()).hexdigest()
    except WarehouseError:
        return None


def _images_part(frame: pd.DataFrame, split: str) -> tuple[str, object]:
    """Hash of each image's pixel SHA-256 and label in order; readable: image count and count per label."""
    if frame["pixel_sha256"].isna().any():
        raise ImagingError(f"cxr_images has {int(frame['pixel_sha256'].isna().sum())} {split} images without "
                           f"pixel_sha256: materialize cxr_images again")  # fmt: skip
    labels = frame["label"].astype(object).where(frame["label"].notna(), None)
    counts = labels.fillna("unlabelled").value_counts()
    summary = {"images": len(frame), **{f"label {k}": int(counts.get(k, 0)) for k in (*CLASSES, "unlabelled")}}
    return _sha256([list(pair) for pair in zip(frame["pixel_sha256"], labels)]), summary


def _part(value: object) -> tuple[str, object]:
    """(SHA-256 of the canonical JSON of `value`, `value`)."""
    return _sha256(value), value


def _sha256(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise ImagingError(f"imaging.train.pretrained_checkpoint {path} is not a file: give the path of a local "
                           f"weights file")  # fmt: skip
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _flat(values: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested settings as one level with dotted keys (augment.max_shift)."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _change(name: str, before: object, after: object) -> str:
    """'name (key before -> after, ...)', or 'name (content)' when the readable values are equal."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        diffs = [f"{k} {before.get(k)} -> {after.get(k)}" for k in keys if before.get(k) != after.get(k)]
    else:
        diffs = [f"{before} -> {after}"] if before != after else []
    return f"{name} ({', '.join(diffs) or 'content'})"
