"""Batched streaming inference of the CXR classifier: class probabilities per image, never all images in memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.device import resolve_device
from epiatlas.imaging.settings import Precision

PROBABILITY_COLUMNS = [f"p_{c}" for c in CLASSES]


def predict(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    precision: Precision = "auto",
) -> pd.DataFrame:
    """Class probabilities for every item: index, predicted_class, p_normal, p_bacterial, p_viral, p_covid19.

    The model is moved to `device` (None: CUDA when available, else the CPU) and put in eval mode; rows follow
    the items' `index`.
    """
    device = resolve_device("auto") if device is None else torch.device(device)
    place_model(model, device)
    batches = list(batch_probabilities(model, loader(dataset, batch_size, num_workers, device), device, precision))
    if not batches:
        raise ImagingError("no images to predict: the data set is empty")
    indices = np.concatenate([b[0] for b in batches])
    probs = np.concatenate([b[2] for b in batches])
    order = np.argsort(indices, kind="stable")
    frame = pd.DataFrame({"index": indices[order].astype(np.int64),
                          "predicted_class": np.asarray(CLASSES)[probs[order].argmax(axis=1)]})  # fmt: skip
    return frame.join(pd.DataFrame(probs[order], columns=PROBABILITY_COLUMNS))


def loader(dataset: Dataset, batch_size: int, num_workers: int, device: torch.device) -> DataLoader:
    """Items in dataset order, batched, loaded by `num_workers` processes (pinned memory for CUDA)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=device.type == "cuda")  # fmt: skip


def batch_probabilities(
    model: nn.Module, batches: DataLoader, device: torch.device, precision: Precision = "auto"
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(indices, labels, probabilities [n, 4] float32) per batch, in eval mode without autograd."""
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            images = to_device(batch["image"], device)
            with autocast(device, precision):
                logits = model(images)
            probs = torch.softmax(logits.float(), dim=1)
            yield batch["index"].numpy(), batch["label"].numpy(), probs.cpu().numpy()


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on `device`, channels-last on CUDA to match `to_device`."""
    return model.to(device, memory_format=torch.channels_last) if device.type == "cuda" else model.to(device)


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images on `device`; channels-last on CUDA (faster convolutions under mixed precision)."""
    if device.type == "cuda":
        return images.to(device, non_blocking=True, memory_format=torch.channels_last)
    return images.to(device)


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """Mixed-precision dtype: 'auto' is bf16 (fp16 where bf16 is unsupported) on CUDA and fp32 on the CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager:
    """torch.autocast for the chosen precision, or a no-op for fp32."""
    dtype = autocast_dtype(device, precision)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
