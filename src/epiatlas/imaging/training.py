"""Training of the CXR classifier: balanced sampling, CXR augmentation, AdamW, early stopping on macro AUC.

Reproducible: weights, sampling order and augmentation all come from `settings.seed` under a fixed thread
count with deterministic algorithms, inside a forked RNG so the caller's random state is untouched. The
trained model is identified by `model_version`, a hash of its checkpoint bytes.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, WeightedRandomSampler

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.evaluation import macro_auc
from epiatlas.imaging.inference import autocast, autocast_dtype, batch_probabilities, loader, place_model, to_device
from epiatlas.imaging.device import resolve_device
from epiatlas.imaging.models import CHECKPOINT_FORMAT, build_model, freeze_backbone
from epiatlas.imaging.settings import AugmentSettings, TrainSettings

HISTORY_COLUMNS = ["epoch", "train_loss", "val_macro_auc"]


@dataclass
class TrainedClassifier:
    """A trained (or loaded) classifier with what produced it; `history` has one row per epoch run."""

    model: nn.Module
    arch: str
    settings: TrainSettings
    history: pd.DataFrame
    best_epoch: int
    val_macro_auc: float
    device: str
    train_seconds: float = 0.0

    @property
    def model_version(self) -> str:
        """First 12 hex digits of the SHA-256 of the checkpoint bytes (same weights, same version)."""
        return hashlib.sha256(save_checkpoint(self)).hexdigest()[:12]


def save_checkpoint(trained: TrainedClassifier) -> bytes:
    """The checkpoint file's bytes: format tag, arch, classes, image size and the weights (on the CPU).

    `build_model(arch, checkpoint=path)` loads it back; the same weights always give the same bytes.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "arch": trained.arch, "classes": list(CLASSES),
               "image_size": trained.settings.image_size, "state_dict": state}  # fmt: skip
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def train_classifier(
    train: Dataset, val: Dataset, settings: TrainSettings, on_epoch: Callable[[dict], None] | None = None
) -> TrainedClassifier:
    """Train `settings.arch` on `train`, keeping the epoch with the best validation macro AUC.

    With `settings.checkpoint` set nothing is trained: the checkpoint is loaded and scored on `val`.
    `on_epoch` receives each epoch's history row plus its wall seconds (for logs and progress).
    """
    if settings.checkpoint is not None:
        return load_classifier(val, settings)
    device = resolve_device(settings.device)
    train_labels = dataset_labels(train, "train")
    dataset_labels(val, "validation")
    require_image_size(train, settings.image_size, "train")
    started = time.perf_counter()
    with reproducible(settings.seed, settings.threads, device):
        model = build_model(settings.arch, pretrained=settings.pretrained_checkpoint)
        trainable = freeze_backbone(model) if settings.mode == "feature_extraction" else list(model.parameters())
        place_model(model, device)
        history, best_state, best_epoch = _fit(model, trainable, train, train_labels, val, settings, device,
                                               on_epoch or (lambda row: None))  # fmt: skip
    model.load_state_dict(best_state)
    best_auc = float(history.loc[history["epoch"] == best_epoch, "val_macro_auc"].iloc[0])
    return TrainedClassifier(model, settings.arch, settings, history, best_epoch, best_auc, str(device),
                             time.perf_counter() - started)  # fmt: skip


def epoch_line(row: dict, epochs: int) -> str:
    """One progress line of an `on_epoch` row: epoch k/N, training loss, validation macro AUC and wall seconds."""
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}, "
            f"val macro AUC {row['val_macro_auc']:.3f}, {row['seconds']:.1f} s")  # fmt: skip


def load_classifier(val: Dataset, settings: TrainSettings) -> TrainedClassifier:
    """The model of `settings.checkpoint` (bring your own), with its macro AUC on `val`; no training."""
    if settings.checkpoint is None:
        raise ImagingError("load_classifier needs settings.checkpoint: the path of a trained checkpoint")
    device = resolve_device(settings.device)
    dataset_labels(val, "validation")
    with reproducible(settings.seed, settings.threads, device):
        model = build_model(settings.arch, checkpoint=settings.checkpoint, image_size=settings.image_size)
        place_model(model, device)
        auc = _validation_auc(model, val, settings, device)
    history = pd.DataFrame({"epoch": pd.Series([], dtype="int64"), "train_loss": pd.Series([], dtype=float),
                            "val_macro_auc": pd.Series([], dtype=float)})  # fmt: skip
    return TrainedClassifier(model, settings.arch, settings, history, 0, auc, str(device))


def dataset_labels(dataset: Dataset, role: str) -> np.ndarray:
    """Class index per item (a `labels` attribute when the data set has one, else read item by item).

    Raises ImagingError when an item is unlabelled (-1) or the set has fewer than two classes.
    """
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i]["label"]) for i in range(len(dataset))]
    labels = np.asarray(labels, dtype=np.int64)
    unknown = int(((labels < 0) | (labels >= len(CLASSES))).sum())
    if unknown:
        raise ImagingError(f"the {role} set has {unknown} of {len(labels)} images without a class label: "
                           f"train and validate only on labelled images")  # fmt: skip
    if len(np.unique(labels)) < 2:
        raise ImagingError(f"the {role} set holds {len(np.unique(labels))} class(es) of {len(labels)} images: "
                           f"macro AUC needs at least two classes; enlarge the set")  # fmt: skip
    return labels


def require_image_size(dataset: Dataset, size: int, role: str) -> None:
    """ImagingError unless the data set's first image is [1, size, size] (the setting the model was made for)."""
    shape = tuple(dataset[0]["image"].shape)
    if shape != (1, size, size):
        raise ImagingError(f"the {role} set's images are {shape}, not [1, {size}, {size}]: build the data set with "
                           f"size=image_size ({size})")  # fmt: skip


@contextmanager
def reproducible(seed: int, threads: int, device: torch.device) -> Iterator[None]:
    """Seeded RNG (forked: restored on exit), fixed CPU threads, deterministic algorithms, no cuDNN autotuning."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic)  # fmt: skip
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        try:
            yield
        finally:
            torch.set_num_threads(saved[0])
            torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3], saved[4]


def augment(images: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Per-image integer shift (zero fill), brightness/contrast jitter, optional flip; clamped to [0, 1].

    No rotation or scaling: bilinear resampling blurs interstitial texture (measured AUC 0.97 -> 0.89).
    """
    n, _, h, w = images.shape
    s = settings.max_shift
    if s > 0:
        dy, dx = (torch.randint(-s, s + 1, (2, n), generator=generator))
        padded = nn.functional.pad(images, (s, s, s, s))
        rows = (torch.arange(h)[None, :] + s - dy[:, None])[:, :, None]
        cols = (torch.arange(w)[None, :] + s - dx[:, None])[:, None, :]
        images = padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]
    contrast = 1.0 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * settings.contrast
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * settings.brightness
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * contrast + mean + brightness
    if settings.horizontal_flip:
        flip = torch.rand(n, generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images.clamp(0.0, 1.0)


def _fit(
    model: nn.Module,
    trainable: list[nn.Parameter],
    train: Dataset,
    train_labels: np.ndarray,
    val: Dataset,
    settings: TrainSettings,
    device: torch.device,
    on_epoch: Callable[[dict], None],
) -> tuple[pd.DataFrame, dict[str, torch.Tensor], int]:
    """Epoch loop with early stopping; (history, best weights, best epoch)."""
    generator = torch.Generator().manual_seed(settings.seed)
    batches = DataLoader(train, batch_size=settings.batch_size, sampler=_sampler(train_labels, settings, generator),
                         num_workers=settings.num_workers, pin_memory=device.type == "cuda", drop_last=True,
                         generator=generator)  # fmt: skip
    if len(batches) == 0:
        raise ImagingError(f"the train set has {len(train_labels)} images, fewer than one batch of "
                           f"{settings.batch_size}: lower batch_size or add images")  # fmt: skip
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr,
                                                   total_steps=settings.epochs * len(batches))  # fmt: skip
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(device, settings.precision) == torch.float16)
    rows, best_state, best_epoch, best_auc = [], {}, 0, -np.inf
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        loss = _train_epoch(model, batches, optimizer, schedule, scaler, settings, device, generator)
        auc = _validation_auc(model, val, settings, device)
        rows.append((epoch, loss, auc))
        on_epoch(dict(zip(HISTORY_COLUMNS, rows[-1]), seconds=time.perf_counter() - started))
        if auc > best_auc:
            best_auc, best_epoch = auc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS), best_state, best_epoch


def _train_epoch(
    model: nn.Module,
    batches: DataLoader,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    settings: TrainSettings,
    device: torch.device,
    generator: torch.Generator,
) -> float:
    """One pass over the sampled batches; mean training loss."""
    model.train()
    if settings.mode == "feature_extraction":
        model.eval()  # frozen backbone: BatchNorm keeps its statistics
        model.get_classifier().train()
    total, count = 0.0, 0
    for batch in batches:
        images = to_device(augment(batch["image"], settings.augment, generator), device)
        labels = batch["label"].to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, settings.precision):
            loss = nn.functional.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        total += float(loss.detach()) * len(labels)
        count += len(labels)
    return total / count


def _validation_auc(model: nn.Module, val: Dataset, settings: TrainSettings, device: torch.device) -> float:
    """Macro one-vs-rest AUC of the model on `val`."""
    batches = loader(val, settings.batch_size, settings.num_workers, device)
    parts = list(batch_probabilities(model, batches, device, settings.precision))
    return macro_auc(np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))


def _sampler(labels: np.ndarray, settings: TrainSettings, generator: torch.Generator) -> Sampler:
    """Seeded sampling of one epoch's worth of items: class-balanced weights, or a plain permutation."""
    if not settings.balanced_sampling:
        return RandomSampler(range(len(labels)), generator=generator)
    counts = np.bincount(labels, minlength=len(CLASSES))
    weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)
