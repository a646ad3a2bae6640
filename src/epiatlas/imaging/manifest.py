"""Check that every manifest row names a decodable image under the image root; quarantine the rest.

The tabular rules of the manifest (types, allowed labels, region references) are the contract
`data_contracts/cxr_manifest.yaml`, applied by ingest; this module adds the file-level rules. Quarantine rows
have the columns of the `quarantine` table, so they can be appended to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from epiatlas.errors import (
    ImageOutsideRootError,
    ImageReadError,
    MissingImageError,
    ReconciliationError,
    SchemaMismatchError,
)
from epiatlas.imaging.decode import read_image

REQUIRED_COLUMNS = ("image_id", "path")
MASK_COLUMNS = ("lung_mask_path", "lesion_mask_path")
QUARANTINE_COLUMNS = ("source", "file", "row_number", "columns", "rules", "message", "raw_values", "action")


@dataclass(frozen=True)
class ImageValidation:
    """Accepted manifest rows and quarantine rows (rejected images; repaired rows whose mask was dropped)."""

    accepted: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def rejected(self) -> pd.DataFrame:
        """Quarantine rows whose image is not in `accepted`."""
        return self.quarantine[self.quarantine["action"] == "rejected"]

    def counts(self) -> dict[str, int]:
        """Rows read, accepted, rejected and repaired, and rejections per rule."""
        by_rule = self.rejected["rules"].value_counts().sort_index()
        return {"read": len(self.accepted) + len(self.rejected), "accepted": len(self.accepted),
                "rejected": len(self.rejected), "repaired": int((self.quarantine["action"] == "repaired").sum()),
                **{f"rejected_{rule}": int(n) for rule, n in by_rule.items()}}


def resolve_under(root: Path, relative: object) -> Path:
    """`root / relative` with symlinks and `..` resolved; ImageOutsideRootError if it leaves the root."""
    if relative is None or pd.isna(relative) or not str(relative).strip():
        raise MissingImageError("path is empty (rule: missing_file); give the image's path relative to the image root")
    base = Path(root).resolve()
    target = (base / str(relative).strip()).resolve()
    if not target.is_relative_to(base):
        raise ImageOutsideRootError(f"{relative}: resolves to {target}, outside the image root {base} (rule: "
                                    f"outside_root); move the file under the root or fix the path (no '..', "
                                    f"absolute paths or symlinks out)")
    return target


def validate_images(manifest: pd.DataFrame, image_root: Path, file: str = "cxr_manifest") -> ImageValidation:
    """Split `manifest` into rows whose image decodes under `image_root` and quarantine rows with the reason.

    A repeated image_id keeps its first row and rejects the others (rule duplicate_image_id); a mask path that
    is missing or leaves the root is set to NULL and recorded with action repaired.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise SchemaMismatchError(f"{file}: image manifest lacks columns {missing} (rule: required columns "
                                  f"{list(REQUIRED_COLUMNS)}); add them to the manifest")
    frame = manifest.reset_index(drop=True)
    repeated = frame["image_id"].duplicated(keep="first")
    keep: list[int] = []
    quarantine: list[dict[str, object]] = []
    masks = {c: frame[c].copy() for c in MASK_COLUMNS if c in frame.columns}
    for i, row in frame.iterrows():
        record = _quarantine_row(file, i, row)
        if repeated[i]:
            quarantine.append(record | {"columns": "image_id", "rules": "duplicate_image_id",
                                        "message": f"image_id {row['image_id']!r} repeats an earlier row (rule: "
                                                   f"duplicate_image_id); give each image its own id"})
            continue
        try:
            read_image(resolve_under(image_root, row["path"]))
        except ImageReadError as exc:
            quarantine.append(record | {"columns": "path", "rules": exc.reason, "message": str(exc)})
            continue
        keep.append(i)
        for column, values in masks.items():
            if problem := _mask_problem(image_root, row[column]):
                values[i] = None
                quarantine.append(record | {"columns": column, "rules": "mask_dropped", "action": "repaired",
                                            "message": f"{column}: {problem}; the image is kept without it"})
    accepted = frame.assign(**masks).loc[keep].reset_index(drop=True)
    result = ImageValidation(accepted, pd.DataFrame(quarantine, columns=list(QUARANTINE_COLUMNS)))
    if result.counts()["read"] != len(frame):
        raise ReconciliationError(f"{file}: {len(frame)} rows read but {result.counts()['read']} accepted + rejected")
    return result


def _mask_problem(root: Path, relative: object) -> str | None:
    """Why a mask path is unusable (outside the root, missing), or None when it is absent or usable."""
    if relative is None or pd.isna(relative):
        return None
    try:
        target = resolve_under(root, relative)
    except ImageReadError as exc:
        return str(exc)
    return None if target.is_file() else f"{relative} does not exist under the image root (rule: missing_file)"


def _quarantine_row(file: str, index: int, row: pd.Series) -> dict[str, object]:
    """The fields every quarantine row of manifest row `index` shares."""
    raw = {k: None if pd.isna(v) else str(v) for k, v in row.items()}
    return {"source": "cxr_manifest", "file": file, "row_number": index + 1,
            "raw_values": json.dumps(raw, sort_keys=True), "action": "rejected"}
