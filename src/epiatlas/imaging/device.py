"""Where the classifier runs: the torch device a `device` setting names (torch only, no timm)."""

from __future__ import annotations

import torch

from epiatlas.errors import ImagingError


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; 'cuda' without a GPU is an error, not a silent fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ImagingError("device: cuda was asked for but torch sees no CUDA GPU; use device: auto or cpu")
    return torch.device(device)
