"""Exact and near-duplicate images, and a train/val/test split that never separates a patient or a duplicate.

Public CXR sets reuse each other's images (the COVID-19 radiography set contains pediatric-set images,
resized), so a naive merge puts copies on both sides of a split and lets the label follow the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.fft import dctn
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.decode import pixel_digest, read_image, resize
from epiatlas.imaging.manifest import resolve_under

NEAR_THRESHOLD = 8
"""Largest Hamming distance (of 64 bits) between perceptual hashes that makes a near-duplicate candidate."""
MIN_CORRELATION = 0.995
"""Smallest Pearson correlation of the 32 x 32 thumbnails that confirms a candidate as a near duplicate.

pHash alone links distinct radiographs that share the same anatomy (among 800 distinct phantoms, 23 pairs
hash identically), while resized and noised copies (pHash distance <= 4) correlate above 0.997 and distinct
phantoms below 0.989.
"""
SPLITS = ("train", "val", "test")
_HASH_SIZE, _HASH_LOW = 32, 8
_BLOCK = 256
DUPLICATE_COLUMNS = ["image_id_a", "image_id_b", "kind", "distance", "correlation", "source_a", "source_b"]


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """The image at 32 x 32 (antialiased), the input of the hash and of the correlation check."""
    return resize(pixels, _HASH_SIZE)


def perceptual_hash(thumb: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a 32 x 32 thumbnail: its 8 x 8 lowest frequencies against their median.

    References
    ----------
    Zauner C. Implementation and benchmarking of perceptual image hash functions. Master's thesis, Upper
    Austria University of Applied Sciences, 2010 (the pHash DCT variant, as in the `imagehash` package).
    """
    low = dctn(thumb.astype(np.float64), type=2, norm="ortho")[:_HASH_LOW, :_HASH_LOW]
    bits = np.packbits((low > np.median(low)).ravel())
    return bits.view(">u8")[0].astype(np.uint64)


def _standardised(thumb: np.ndarray) -> np.ndarray:
    """Thumbnail as a zero-mean unit-norm vector (dot products are Pearson correlations)."""
    flat = thumb.astype(np.float64).ravel()
    flat -= flat.mean()
    norm = np.linalg.norm(flat)
    return (flat / norm if norm > 0 else flat).astype(np.float32)


def hamming_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j whose 64-bit hashes differ in at most `threshold` bits (blockwise, no n x n matrix)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    first, second = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for start in range(0, len(hashes), _BLOCK):
        distance = np.bitwise_count(hashes[start:start + _BLOCK, None] ^ hashes[None, :])
        i, j = np.nonzero(distance <= threshold)
        upper = start + i < j
        first.append(start + i[upper])
        second.append(j[upper])
    return np.concatenate(first), np.concatenate(second)


def pair_correlations(vectors: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise dot products vectors[first[k]] . vectors[second[k]], in chunks (no pairs x pixels copy)."""
    out = np.empty(len(first), dtype=np.float64)
    for start in range(0, len(first), _BLOCK * 16):
        stop = start + _BLOCK * 16
        out[start:stop] = np.einsum("ij,ij->i", vectors[first[start:stop]], vectors[second[start:stop]])
    return out


@dataclass(frozen=True)
class ImageSignatures:
    """Per image, in manifest order: sha256 of the decoded pixels, 64-bit pHash, standardised 32 x 32 thumbnail."""

    digests: list[str]
    hashes: np.ndarray
    thumbs: np.ndarray


def image_signatures(manifest: pd.DataFrame, root: Path) -> ImageSignatures:
    """Decode every image of `manifest` (paths under `root`) once and compute its signatures."""
    digests, hashes, vectors = [], [], []
    for relative in manifest["path"]:
        pixels = read_image(resolve_under(root, relative))
        thumb = thumbnail(pixels)
        digests.append(pixel_digest(pixels))
        hashes.append(perceptual_hash(thumb))
        vectors.append(_standardised(thumb))
    return ImageSignatures(digests, np.array(hashes, dtype=np.uint64),
                           np.array(vectors, dtype=np.float32).reshape(len(manifest), -1))  # fmt: skip


def find_duplicates(manifest: pd.DataFrame, root: Path, threshold: int = NEAR_THRESHOLD,
                    min_correlation: float = MIN_CORRELATION) -> pd.DataFrame:
    """Pairs of images that are exact or near duplicates (see `duplicate_pairs`), decoding each image under `root`."""
    return duplicate_pairs(manifest, image_signatures(manifest, root), threshold, min_correlation)


def duplicate_pairs(manifest: pd.DataFrame, signatures: ImageSignatures, threshold: int = NEAR_THRESHOLD,
                    min_correlation: float = MIN_CORRELATION) -> pd.DataFrame:
    """Pairs of images that are exact (same decoded pixels, sha256) or near duplicates, within and across sources.

    Near: pHash distance <= `threshold` and thumbnail correlation >= `min_correlation`. One row per pair
    (a before b in manifest order) with kind exact|near, the pHash distance, the thumbnail correlation and
    each image's source (NULL when the manifest has no source column).
    """
    ids = manifest["image_id"].astype(str).to_numpy()
    sources = manifest["source"].to_numpy() if "source" in manifest.columns else np.full(len(ids), None)
    all_hashes, thumbs = signatures.hashes, signatures.thumbs
    exact = _exact_pairs(signatures.digests)
    near_i, near_j = hamming_pairs(all_hashes, threshold)
    similar = pair_correlations(thumbs, near_i, near_j) >= min_correlation
    near = [(i, j) for i, j in zip(near_i[similar].tolist(), near_j[similar].tolist()) if (i, j) not in exact]
    pairs = np.array(sorted(exact) + near, dtype=np.int64).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    return pd.DataFrame({
        "image_id_a": ids[a], "image_id_b": ids[b], "kind": ["exact"] * len(exact) + ["near"] * len(near),
        "distance": np.bitwise_count(all_hashes[a] ^ all_hashes[b]).astype(np.int64),
        "correlation": pair_correlations(thumbs, a, b).round(6),
        "source_a": sources[a], "source_b": sources[b],
    }, columns=DUPLICATE_COLUMNS)


def _exact_pairs(digests: list[str]) -> set[tuple[int, int]]:
    """(i, j) index pairs, i < j, of images with the same pixel digest."""
    members: dict[str, list[int]] = {}
    for k, digest in enumerate(digests):
        members.setdefault(digest, []).append(k)
    return {(m[x], m[y]) for m in members.values() for x in range(len(m)) for y in range(x + 1, len(m))}


def linked_groups(manifest: pd.DataFrame, duplicates: pd.DataFrame) -> np.ndarray:
    """Group number per manifest row: connected components of 'same patient' and 'duplicate pair' links."""
    position = {image_id: k for k, image_id in enumerate(manifest["image_id"].astype(str))}
    unknown = set(duplicates["image_id_a"]).union(duplicates["image_id_b"]) - set(position)
    if unknown:
        raise ImagingError(f"duplicates name image_ids not in the manifest: {sorted(unknown)[:5]}; compute the "
                           f"duplicates on the same manifest")
    edges = [(position[a], position[b]) for a, b in zip(duplicates["image_id_a"], duplicates["image_id_b"])]
    if "patient_id" in manifest.columns:
        rows = pd.Series(range(len(manifest))).groupby(manifest["patient_id"].to_numpy(), dropna=True).agg(list)
        edges += [(m[0], other) for m in rows for other in m[1:]]
    first, second = (np.array(side, dtype=np.int64) for side in zip(*edges)) if edges else (np.empty(0, int),) * 2
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(len(manifest), len(manifest)))
    return connected_components(graph, directed=False)[1]


def grouped_split(manifest: pd.DataFrame, duplicates: pd.DataFrame, test_share: float, val_share: float,
                  seed: int) -> pd.DataFrame:
    """image_id, group and split (train/val/test) per row; a patient or duplicate cluster is never split.

    Groups are stratified by their most frequent label: within a label, groups are shuffled (seeded) and
    each goes to the split furthest below its target share.
    """
    if not (0 <= test_share < 1 and 0 <= val_share < 1 and test_share + val_share < 1):
        raise ImagingError(f"grouped_split: test_share={test_share}, val_share={val_share}; each must be in "
                           f"[0, 1) and their sum below 1 so train keeps images")
    groups = linked_groups(manifest, duplicates)
    labels = manifest["label"] if "label" in manifest.columns else pd.Series([None] * len(manifest))
    frame = pd.DataFrame({"group": groups, "label": labels.to_numpy()})
    rank = {c: k for k, c in enumerate(CLASSES)}
    frame["order"] = frame["label"].map(rank).fillna(len(CLASSES))
    stratum = frame.groupby("group")["order"].agg(lambda s: s.value_counts().sort_index(kind="stable").idxmax())
    sizes = frame.groupby("group").size()
    shares = np.array([1 - test_share - val_share, val_share, test_share])
    rng = np.random.default_rng(seed)
    split_of: dict[int, str] = {}
    for _, members in stratum.groupby(stratum, sort=True):
        group_ids = rng.permutation(members.index.to_numpy())
        filled = np.zeros(3)
        target = shares * sizes[group_ids].sum()
        for group in group_ids:
            choice = int(np.argmax(target - filled))
            split_of[int(group)] = SPLITS[choice]
            filled[choice] += sizes[group]
    return pd.DataFrame({"image_id": manifest["image_id"].to_numpy(), "group": groups,
                         "split": [split_of[int(g)] for g in groups]})
