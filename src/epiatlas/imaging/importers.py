"""Build image manifests from the class-per-folder layouts public chest X-ray sets ship in.

- pediatric_pneumonia (Kermany et al.): `{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg`; pneumonia files say
  `bacteria` or `virus` in their name, and `personN_...` / `IM-NNNN-...` names identify the patient.
- covid19_radiography (COVID-QU-Ex / Kaggle): `{COVID,Normal,Viral Pneumonia,Lung_Opacity}/images/*.png` with
  lung masks of the same name in `masks/` (older releases keep the images directly in the class folder).
  Lung_Opacity (other lung disease) is not one of our classes.

The manifest has the columns of `data_contracts/cxr_manifest.yaml` (region_id and study_date NULL: the sets
carry none) and paths relative to `root`. Excluded files are counted in `manifest.attrs["excluded"]`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pandas as pd

from epiatlas.errors import ImagingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
MANIFEST_COLUMNS = ("image_id", "path", "region_id", "study_date", "label", "patient_id", "sex", "age", "view",
                    "lung_mask_path", "lesion_mask_path", "source")
COVID19_FOLDERS = {"COVID": "covid19", "Normal": "normal", "Viral Pneumonia": "viral", "Lung_Opacity": None}
_PEDIATRIC_PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)


def import_class_folders(root: Path, layout: Literal["pediatric_pneumonia", "covid19_radiography"]) -> pd.DataFrame:
    """Manifest of every image under `root` in `layout`, sorted by path; excluded files counted in attrs."""
    root = Path(root)
    if not root.is_dir():
        raise ImagingError(f"{root}: image folder does not exist; point the importer at the unpacked data set")
    if layout == "pediatric_pneumonia":
        rows, excluded = _pediatric(root)
    elif layout == "covid19_radiography":
        rows, excluded = _covid19(root)
    else:
        raise ImagingError(f"unknown layout {layout!r}; use pediatric_pneumonia or covid19_radiography")
    if not rows:
        raise ImagingError(f"{root}: no {', '.join(IMAGE_SUFFIXES)} images in the {layout} layout; check the "
                           f"folder (expected class folders as described in epiatlas.imaging.importers)")
    manifest = pd.DataFrame(rows).reindex(columns=list(MANIFEST_COLUMNS)).sort_values("path", ignore_index=True)
    manifest["source"] = layout
    manifest.attrs["excluded"] = excluded
    return manifest


def _images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _pediatric(root: Path) -> tuple[list[dict[str, object]], dict[str, int]]:
    rows: list[dict[str, object]] = []
    excluded = {"pneumonia_without_type": 0}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and p.name.upper() in ("NORMAL", "PNEUMONIA")):
        for path in _images(folder):
            label = _pediatric_label(folder.name.upper(), path.name.lower())
            if label is None:
                excluded["pneumonia_without_type"] += 1
                continue
            relative = path.relative_to(root).as_posix()
            patient = _PEDIATRIC_PATIENT.match(path.name)
            rows.append({"image_id": f"pediatric_pneumonia:{relative}", "path": relative, "label": label,
                         "patient_id": f"pediatric_pneumonia:{(patient[1] or patient[2]).lower()}" if patient
                         else None})
    return rows, excluded


def _pediatric_label(folder: str, name: str) -> str | None:
    if folder == "NORMAL":
        return "normal"
    if "bacteria" in name:
        return "bacterial"
    return "viral" if "virus" in name else None


def _covid19(root: Path) -> tuple[list[dict[str, object]], dict[str, int]]:
    rows: list[dict[str, object]] = []
    excluded = {"Lung_Opacity": 0}
    for folder_name, label in COVID19_FOLDERS.items():
        folder = root / folder_name
        if not folder.is_dir():
            continue
        images = folder / "images" if (folder / "images").is_dir() else folder
        if label is None:
            excluded[folder_name] += len(_images(images))
            continue
        for path in _images(images):
            mask = folder / "masks" / path.name
            relative = path.relative_to(root).as_posix()
            rows.append({"image_id": f"covid19_radiography:{relative}", "path": relative, "label": label,
                         "lung_mask_path": mask.relative_to(root).as_posix() if mask.is_file() else None})
    return rows, excluded
