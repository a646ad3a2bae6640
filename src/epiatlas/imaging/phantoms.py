"""Synthetic chest X-ray phantoms with known class, lung and lesion masks, spread over regions and periods.

A phantom is a frontal thorax (body, two lung fields, mediastinum and spine, heart, ribs, noise) with one
class-specific finding: bacterial = dense consolidation of one lobe; viral = bilateral perihilar reticular
(high-frequency) net; covid19 = bilateral peripheral lower-zone ground glass; normal = none. With
markers="correlated" a burned-in text-like glyph sits in a border corner chosen by the class (a shortcut).
Every file says it is synthetic: the manifest's source column and a PNG text chunk, never the pixels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from scipy.ndimage import gaussian_filter

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES

SOURCE = "synthetic phantom"
DEFAULT_REGIONS = ("PH01", "PH02", "PH03", "PH04", "PH05")
DEFAULT_PERIODS = (2020, 2021, 2022)
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
MARKER_AGREEMENT = 0.9
"""Share of marked images whose glyph sits in their class's corner (the rest: a random corner)."""

_BASE_LOGITS = np.array([0.5, 0.0, -0.1, -0.3])
_REGION_EFFECT_SD = 0.9
_COVID_TREND = 0.5
_PATIENTS_PER_IMAGE = 0.8
_MIN_SIZE = 64
_GLYPHS = {  # 3 x 5 bitmaps of the letters a lateral marker / projection label uses
    "L": ("100", "100", "100", "100", "111"),
    "R": ("110", "101", "110", "101", "101"),
    "A": ("010", "101", "111", "101", "101"),
    "P": ("110", "101", "110", "100", "100"),
}
_MARKER_TEXTS = ("L", "R", "PA", "AP")


@dataclass(frozen=True)
class Phantom:
    """One rendered phantom: image in [0, 1], lung and lesion masks, and the marker corner (or None)."""

    image: np.ndarray
    lung_mask: np.ndarray
    lesion_mask: np.ndarray
    marker_corner: str | None


def generate_phantoms(out_dir: Path, n: int, size: int, seed: int,
                      markers: Literal["none", "correlated"] = "none", regions: pd.DataFrame | None = None,
                      periods: list[int] | None = None) -> pd.DataFrame:
    """Write `n` phantom PNGs with lung and lesion mask PNGs under `out_dir`; return their manifest.

    Class shares vary by region (multinomial logit with a random region effect per class) and COVID-19 rises
    with the period. Paths in the manifest are relative to `out_dir`; same arguments give identical files.
    """
    if n < 1 or size < _MIN_SIZE:
        raise ImagingError(f"generate_phantoms: n={n}, size={size}; need n >= 1 and size >= {_MIN_SIZE} px")
    if markers not in ("none", "correlated"):
        raise ImagingError(f"generate_phantoms: markers={markers!r}; use 'none' or 'correlated'")
    region_ids = _region_ids(regions)
    period_list = sorted(periods) if periods else list(DEFAULT_PERIODS)
    manifest = _studies(n, seed, region_ids, period_list)
    out_dir = Path(out_dir)
    for folder in ("images", "masks/lung", "masks/lesion"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    grid = _grid(size)
    corners: list[str | None] = []
    for i, row in enumerate(manifest.itertuples(index=False)):
        rng = np.random.default_rng([seed, i, 1])
        phantom = render_phantom(grid, CLASSES.index(row.label), rng, markers == "correlated")
        _write_png(out_dir / row.path, phantom.image, {"Source": SOURCE})
        _write_mask(out_dir / row.lung_mask_path, phantom.lung_mask)
        _write_mask(out_dir / row.lesion_mask_path, phantom.lesion_mask)
        corners.append(phantom.marker_corner)
    return manifest.assign(marker_corner=corners)


def class_probabilities(region_ids: list[str], periods: list[int], seed: int) -> pd.DataFrame:
    """True class probabilities per region and period used by `generate_phantoms` (one column per class)."""
    effects = np.random.default_rng([seed, 0]).normal(0.0, _REGION_EFFECT_SD, (len(region_ids), len(CLASSES)))
    centre = (len(periods) - 1) / 2
    rows = []
    for r, region in enumerate(region_ids):
        for t, period in enumerate(periods):
            logits = _BASE_LOGITS + effects[r]
            logits[CLASSES.index("covid19")] += _COVID_TREND * (t - centre)
            probs = np.exp(logits - logits.max())
            rows.append({"region_id": region, "period": period, **dict(zip(CLASSES, probs / probs.sum()))})
    return pd.DataFrame(rows)


def _region_ids(regions: pd.DataFrame | None) -> list[str]:
    if regions is None:
        return list(DEFAULT_REGIONS)
    if "region_id" not in regions.columns or regions["region_id"].isna().any() or regions.empty:
        raise ImagingError("generate_phantoms: regions needs a non-empty region_id column without nulls")
    return sorted(regions["region_id"].astype(str).unique())


def _studies(n: int, seed: int, region_ids: list[str], periods: list[int]) -> pd.DataFrame:
    """Manifest rows (patients, regions, periods, dates, labels) before any pixel is drawn."""
    rng = np.random.default_rng([seed, 2])
    n_patients = max(1, round(n * _PATIENTS_PER_IMAGE))
    patient_region = rng.integers(len(region_ids), size=n_patients)
    patient_sex = rng.choice(np.array(["M", "F"]), size=n_patients)
    patient_age = rng.integers(1, 91, size=n_patients)
    patient = np.sort(rng.integers(n_patients, size=n))
    period_index = rng.integers(len(periods), size=n)
    day = rng.integers(0, 365, size=n)
    probs = class_probabilities(region_ids, periods, seed)[list(CLASSES)].to_numpy()
    cell = patient_region[patient] * len(periods) + period_index
    label = (rng.random(n)[:, None] > np.cumsum(probs[cell], axis=1)).sum(axis=1).clip(max=len(CLASSES) - 1)
    ids = [f"phantom-{i:06d}" for i in range(n)]
    return pd.DataFrame({
        "image_id": ids,
        "path": [f"images/{i}.png" for i in ids],
        "region_id": np.array(region_ids)[patient_region[patient]],
        "study_date": [dt.date(periods[p], 1, 1) + dt.timedelta(days=int(d)) for p, d in zip(period_index, day)],
        "label": np.array(CLASSES)[label],
        "patient_id": [f"phantom-patient-{p:06d}" for p in patient],
        "sex": patient_sex[patient],
        "age": patient_age[patient].astype("int64"),
        "view": np.where(rng.random(n) < 0.8, "PA", "AP"),
        "lung_mask_path": [f"masks/lung/{i}.png" for i in ids],
        "lesion_mask_path": [f"masks/lesion/{i}.png" for i in ids],
        "source": SOURCE,
    })


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (y, x) coordinates in [-1, 1] of a size x size image, y pointing down."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    return np.meshgrid(axis, axis, indexing="ij")


def render_phantom(grid: tuple[np.ndarray, np.ndarray], label: int, rng: np.random.Generator,
                   marker: bool) -> Phantom:
    """One phantom of class index `label` on `grid`, all randomness from `rng`."""
    y, x = grid
    size = y.shape[0]
    cx, cy, width = rng.normal(0.0, 0.05), 0.05 + rng.normal(0.0, 0.04), rng.uniform(0.72, 0.92)
    body = _ellipse(y, x, cy, cx, rng.uniform(0.82, 1.0), width) < 1
    lungs = []
    for side in (-1, 1):
        ly, lx = cy - 0.08 + rng.normal(0.0, 0.03), cx + side * width * rng.uniform(0.38, 0.46)
        lungs.append((ly, lx, rng.uniform(0.48, 0.64), width * rng.uniform(0.23, 0.29)))
    heart = _ellipse(y, x, cy + rng.uniform(0.22, 0.34), cx + rng.uniform(0.08, 0.16), rng.uniform(0.2, 0.28),
                     rng.uniform(0.22, 0.32)) < 1
    lung_mask = np.zeros_like(body)
    for ly, lx, hy, wx in lungs:
        lung_mask |= _ellipse(y, x, ly, lx, hy, wx) < 1
    lung_mask &= ~heart & body
    image = np.where(body, 0.42, 0.03).astype(np.float32)
    image[np.abs(x - cx) < 0.09] += 0.2 * body[np.abs(x - cx) < 0.09]
    image[heart] = 0.58
    image[lung_mask] = 0.13
    image = gaussian_filter(image, sigma=size / 128)
    spacing = rng.uniform(0.14, 0.19)
    phase = (y - rng.uniform(0.25, 0.45) * (x - cx) ** 2 - rng.uniform(0.0, spacing)) / spacing
    image += 0.08 * np.maximum(np.cos(2 * np.pi * phase), 0.0) ** 3 * body
    finding = _FINDINGS[CLASSES[label]](y, x, lung_mask, lungs, size, rng)
    image += finding[0]
    corner = _burn_marker(image, label, rng) if marker else None
    exposure = np.clip(image, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    image = exposure * rng.uniform(0.9, 1.1) + rng.normal(0.0, 0.02, image.shape)
    return Phantom(np.clip(image, 0.0, 1.0).astype(np.float32), lung_mask, finding[1], corner)


def _ellipse(y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Squared normalised radius of each pixel from an axis-aligned ellipse (< 1 inside)."""
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2


Lungs = list[tuple[float, float, float, float]]
Finding = tuple[np.ndarray, np.ndarray]


def _no_finding(y: np.ndarray, x: np.ndarray, lung: np.ndarray, lungs: Lungs, size: int,
                rng: np.random.Generator) -> Finding:
    return np.zeros_like(y), np.zeros_like(lung)


def _lobar_consolidation(y: np.ndarray, x: np.ndarray, lung: np.ndarray, lungs: Lungs, size: int,
                         rng: np.random.Generator) -> Finding:
    """Dense, sharply bounded opacity filling most of one upper or lower lobe of one lung."""
    ly, lx, hy, wx = lungs[rng.integers(2)]
    zone = rng.choice([-0.4, 0.35])
    centre_x = lx + np.sign(lx) * 0.25 * wx + rng.normal(0, 0.03)
    weight = np.clip(2.0 * (1.0 - _ellipse(y, x, ly + zone * hy, centre_x, 0.45 * hy, 1.1 * wx)), 0.0, 1.0) * lung
    return rng.uniform(0.3, 0.42) * weight, weight > 0.5


def _interstitial_net(y: np.ndarray, x: np.ndarray, lung: np.ndarray, lungs: Lungs, size: int,
                      rng: np.random.Generator) -> Finding:
    """Bilateral perihilar reticular net: thin crossing lines with a 3-4.5 px period, on both lungs."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros_like(y)
    for angle in rng.uniform(0, np.pi, 2) + np.array([0.0, np.pi / 2]):
        period = rng.uniform(3.0, 4.5)
        field += np.cos(2 * np.pi * (rows * np.sin(angle) + cols * np.cos(angle)) / period + rng.uniform(0, 6.3))
    net = (np.abs(field) < 0.7).astype(np.float32)
    hilar = sum(np.exp(-_ellipse(y, x, ly, lx - np.sign(lx) * 0.3 * wx, 0.8 * hy, 1.2 * wx))
                for ly, lx, hy, wx in lungs)
    weight = np.clip(1.4 * hilar, 0.0, 1.0) * lung
    return rng.uniform(0.12, 0.2) * net * weight, weight > 0.5


def _ground_glass(y: np.ndarray, x: np.ndarray, lung: np.ndarray, lungs: Lungs, size: int,
                  rng: np.random.Generator) -> Finding:
    """Bilateral hazy opacity in the peripheral (lateral) lower zone of each lung."""
    weight = np.zeros_like(y)
    for ly, lx, hy, wx in lungs:
        lateral = np.clip((np.sign(lx) * (x - lx) + 0.1 * wx) / (0.5 * wx), 0.0, 1.0)
        lower = np.clip((y - ly) / (0.5 * hy), 0.0, 1.0)
        weight = np.maximum(weight, lateral * lower)
    weight = gaussian_filter(weight * lung, sigma=size / 64)
    return rng.uniform(0.14, 0.22) * weight, (weight > 0.35) & lung


_FINDINGS = {"normal": _no_finding, "bacterial": _lobar_consolidation, "viral": _interstitial_net,
             "covid19": _ground_glass}


def _burn_marker(image: np.ndarray, label: int, rng: np.random.Generator) -> str:
    """Burn a text glyph into a corner (the class's corner with probability MARKER_AGREEMENT); return it."""
    corner = CORNERS[label] if rng.random() < MARKER_AGREEMENT else CORNERS[rng.integers(len(CORNERS))]
    text = _MARKER_TEXTS[rng.integers(len(_MARKER_TEXTS))]
    scale = max(1, image.shape[0] // 64)
    glyph = np.hstack([np.pad(_glyph(c), ((0, 0), (0, 1))) for c in text]).repeat(scale, 0).repeat(scale, 1)
    h, w = glyph.shape
    margin = max(2, image.shape[0] // 32)
    top = margin if corner.startswith("top") else image.shape[0] - margin - h
    left = margin if corner.endswith("left") else image.shape[1] - margin - w
    image[top:top + h, left:left + w] = np.where(glyph, 0.95, image[top:top + h, left:left + w])
    return corner


def _glyph(char: str) -> np.ndarray:
    return np.array([[c == "1" for c in row] for row in _GLYPHS[char]])


def _write_png(path: Path, pixels: np.ndarray, text: dict[str, str]) -> None:
    """Save [0, 1] pixels as an 8-bit gray PNG with `text` as tEXt chunks (no timestamps)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    Image.fromarray(np.rint(pixels * 255).astype(np.uint8)).save(path, pnginfo=info, compress_level=1)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    """Save a bool mask as a 1-bit PNG (white = inside)."""
    Image.fromarray(mask).save(path, compress_level=1)
