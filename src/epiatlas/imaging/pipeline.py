"""The imaging steps the pipeline runs, on DataFrames: prepare the images, summarise per region, publish safely.

Torch is imported only by the steps that train, predict or explain (through `epiatlas.imaging.*`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.config import ImagingConfig
from epiatlas.imaging.dedup import duplicate_pairs, grouped_split, image_signatures
from epiatlas.imaging.manifest import validate_images

PROBABILITY_COLUMNS = [f"p_{c}" for c in CLASSES]
QUARANTINE_SOURCE = "cxr_images"  # the images' partition of the quarantine table
IMAGE_COLUMNS = ["image_id", "path", "pixel_sha256", "region_id", "period", "label", "patient_id", "sex", "age",
                 "view", "lung_mask_path", "lesion_mask_path", "source", "split", "group"]  # fmt: skip
AGE_BANDS = [0, 18, 40, 65, 200]


@dataclass(frozen=True)
class PreparedImages:
    """Images that decode, with their split; quarantine rows; duplicate pairs; counts for metadata."""

    images: pd.DataFrame
    quarantine: pd.DataFrame
    duplicates: pd.DataFrame
    counts: dict[str, int]


def prepare_images(manifest: pd.DataFrame, config: ImagingConfig, file: str = "cxr_manifest") -> PreparedImages:
    """Check every image decodes under the root, find exact and near duplicates, split by patient and duplicate.

    A patient's images, and every cluster of duplicates (within or across source sets), stay on one side of the
    split, so a reused image cannot leak from training into the held-out set.
    """
    validation = validate_images(manifest, config.image_root, file)
    accepted = validation.accepted.reset_index(drop=True)
    if accepted.empty:
        raise ImagingError(f"{file}: no image of the manifest could be read under {config.image_root}; "
                           f"see the quarantine rows for each reason")
    signatures = image_signatures(accepted, config.image_root)
    accepted["pixel_sha256"] = signatures.digests
    duplicates = duplicate_pairs(accepted, signatures, threshold=config.near_duplicate_bits)
    split = grouped_split(accepted, duplicates, config.test_share, config.val_share, config.split_seed)
    images = accepted.merge(split, on="image_id", how="left")
    images["period"] = pd.to_datetime(images["study_date"]).dt.year.astype("Int64")
    for column in IMAGE_COLUMNS:
        if column not in images.columns:
            images[column] = None
    cross = duplicates["source_a"].fillna("") != duplicates["source_b"].fillna("")
    counts = validation.counts() | {
        "exact_duplicate_pairs": int((duplicates["kind"] == "exact").sum()),
        "near_duplicate_pairs": int((duplicates["kind"] == "near").sum()),
        "cross_source_duplicate_pairs": int(cross.sum()),
        **{f"split_{name}": int(n) for name, n in images["split"].value_counts().sort_index().items()},
    }
    return PreparedImages(images[IMAGE_COLUMNS], validation.quarantine, duplicates, counts)


def age_band(age: pd.Series) -> pd.Series:
    """Age bands 0-17, 18-39, 40-64, 65+ (NULL when the age is unknown)."""
    labels = ["0-17", "18-39", "40-64", "65+"]
    return pd.cut(age.astype("Float64"), bins=AGE_BANDS, right=False, labels=labels).astype("string")


def evaluation_groups(images: pd.DataFrame) -> pd.DataFrame:
    """Subgroup columns for the evaluation: region, sex and age band where the manifest has them."""
    groups = pd.DataFrame(index=images.index)
    for column in ("region_id", "sex"):
        if images[column].notna().any():
            groups[column] = images[column].astype("string").fillna("unknown")
    if images["age"].notna().any():
        groups["age_band"] = age_band(images["age"]).fillna("unknown")
    return groups.reset_index(drop=True)


def suppress_small_groups(metrics: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Blank subgroup metrics computed on fewer than `threshold` images (their counts stay visible as n)."""
    out = metrics.copy()
    small = (out["subgroup"] != "all") & (out["n"] < threshold)
    out.loc[small, ["estimate", "ci_low", "ci_high"]] = np.nan
    out["suppressed"] = small
    return out


def region_summary(predictions: pd.DataFrame, threshold: int, border_share: float) -> pd.DataFrame:
    """Per region x period: images, share and mean probability per predicted class, attention on and off the lungs.

    Cells with 0 < n_images < threshold are suppressed like the outcomes: every figure of the row is blanked.
    An image's attention is off the lungs as `attention.off_lung` says (border-band share above `border_share`,
    or less heat on the lungs than their area).
    """
    from epiatlas.imaging.attention import off_lung

    frame = predictions.assign(off_lung=off_lung(predictions, border_share))
    grouped = frame.groupby(["region_id", "period"], sort=True)
    summary = grouped.size().rename("n_images").to_frame()
    for cls in CLASSES:
        summary[f"share_{cls}"] = grouped["predicted_class"].apply(lambda s, c=cls: float((s == c).mean()))
        summary[f"mean_p_{cls}"] = grouped[f"p_{cls}"].mean()
    summary["mean_lung_share"] = grouped["lung_share"].mean()
    summary["share_off_lung"] = grouped["off_lung"].mean().astype(float)
    summary = summary.reset_index()
    small = summary["n_images"] < threshold
    figures = [c for c in summary.columns if c not in ("region_id", "period")]
    summary[figures] = summary[figures].astype(float)
    summary.loc[small, figures] = np.nan
    summary["suppressed"] = small
    summary["n_images"] = summary["n_images"].astype("Int64")
    return summary


def overlay_sample(predictions: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """Up to `per_class` held-out images per predicted class, the most confident first (deterministic)."""
    if per_class == 0:
        return predictions.head(0)
    confidence = predictions[PROBABILITY_COLUMNS].max(axis=1)
    ranked = predictions.assign(confidence=confidence).sort_values(["predicted_class", "confidence", "image_id"],
                                                                    ascending=[True, False, True], kind="stable")
    return ranked.groupby("predicted_class", sort=True).head(per_class).reset_index(drop=True)
