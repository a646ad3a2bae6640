"""A torch Dataset over a manifest that decodes one image per item from disk (never the whole set in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.decode import read_image
from epiatlas.imaging.manifest import resolve_under

UNKNOWN_LABEL = -1


def label_indices(labels: pd.Series) -> np.ndarray:
    """Class index per label (CLASSES order), -1 for a missing label; ImagingError for any other value."""
    known = labels.dropna()
    unknown = sorted(set(known.astype(str)) - set(CLASSES))
    if unknown:
        raise ImagingError(f"labels {unknown} are not classes {list(CLASSES)}; recode or blank them in the manifest")
    rank = {c: k for k, c in enumerate(CLASSES)}
    return labels.map(rank).fillna(UNKNOWN_LABEL).astype(np.int64).to_numpy()


def read_mask(path: Path, size: int) -> np.ndarray:
    """Mask file as a bool size x size array (non-zero = inside), resized with nearest neighbour."""
    with Image.open(path) as image:
        gray = image.convert("L").resize((size, size), Image.Resampling.NEAREST)
        return np.asarray(gray) > 0


class CxrDataset(Dataset):
    """Items dict(image=[1,S,S] float32, label=int (-1 unknown), index=row position[, lung_mask, has_mask]).

    With `with_masks`, lung_mask is the manifest's lung mask at S x S (bool) and has_mask True, or all-False
    with has_mask False where the row has no mask path.
    """

    def __init__(self, manifest: pd.DataFrame, root: Path, size: int, with_masks: bool = False) -> None:
        self.paths = manifest["path"].tolist()
        absent = pd.Series([None] * len(manifest), index=manifest.index, dtype=object)
        self.labels = label_indices(manifest.get("label", absent))
        self.mask_paths = [None if pd.isna(m) else m for m in manifest.get("lung_mask_path", absent)]
        self.root = Path(root)
        self.size = size
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, object]:
        pixels = read_image(resolve_under(self.root, self.paths[index]), self.size)
        item: dict[str, object] = {"image": torch.from_numpy(pixels).unsqueeze(0), "label": int(self.labels[index]),
                                   "index": index}
        if self.with_masks:
            mask_path = self.mask_paths[index]
            has_mask = mask_path is not None
            mask = read_mask(resolve_under(self.root, mask_path), self.size) if has_mask else \
                np.zeros((self.size, self.size), dtype=bool)
            item |= {"lung_mask": torch.from_numpy(mask), "has_mask": has_mask}
        return item
