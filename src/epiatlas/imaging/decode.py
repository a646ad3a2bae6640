"""Decode PNG, JPEG and DICOM chest X-rays into float32 gray images in [0, 1] (0 = air, 1 = bone).

Only pixels leave this module: DICOM header fields (patient name, IDs, dates) are never returned or put into
messages. Every failure is an `ImageReadError` subclass whose `reason` is the quarantine rule it breaks.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from epiatlas.errors import (
    DicomWithoutPixelsError,
    MissingImageError,
    TinyImageError,
    UnreadableImageError,
    UnsupportedImageError,
)

MIN_SIDE = 64
"""Smallest accepted side length in pixels; smaller files are thumbnails or icons, not radiographs."""

DICOM_SUFFIXES = (".dcm", ".dicom")
_DICOM_MAGIC_OFFSET = 128
_PIL_SCALE = {"1": 1.0, "L": 255.0, "I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}
_PIL_COLOUR = ("RGB", "RGBA", "RGBX", "P", "PA", "LA", "La")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DECODE_ERRORS = (OSError, EOFError, ValueError, SyntaxError, struct.error, zlib.error, Image.DecompressionBombError)


def is_dicom(path: Path) -> bool:
    """Whether `path` is a DICOM file (by suffix, or the 'DICM' marker after the 128-byte preamble)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with path.open("rb") as handle:
        handle.seek(_DICOM_MAGIC_OFFSET)
        return handle.read(4) == b"DICM"


def read_image(path: Path, size: int | None = None) -> np.ndarray:
    """The image at `path` as a float32 2-D array in [0, 1], resized to `size` x `size` when given.

    Raises `MissingImageError`, `UnreadableImageError`, `UnsupportedImageError`, `TinyImageError` or
    `DicomWithoutPixelsError`, each naming the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingImageError(f"{path}: image file does not exist (rule: missing_file); fix the manifest's path "
                                f"or restore the file under the image root")
    try:
        dicom = is_dicom(path)
    except OSError as exc:
        raise UnreadableImageError(f"{path}: cannot open the file ({exc.strerror}) (rule: unreadable); check its "
                                   f"permissions") from exc
    pixels = _read_dicom(path) if dicom else _read_raster(path)
    if min(pixels.shape) < MIN_SIDE:
        raise TinyImageError(f"{path}: image is {pixels.shape[1]} x {pixels.shape[0]} px, below the minimum side of "
                             f"{MIN_SIDE} px (rule: tiny_image); supply the full-resolution radiograph")
    return pixels if size is None else resize(pixels, size)


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """`pixels` resampled to `size` x `size` with Pillow's antialiased bilinear filter, clipped to [0, 1]."""
    if pixels.shape == (size, size):
        return pixels
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 of the decoded pixels (shape and float32 values), independent of the file format."""
    digest = hashlib.sha256(np.asarray(pixels.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(pixels, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _read_raster(path: Path) -> np.ndarray:
    """Decode a PNG/JPEG (8- or 16-bit gray, palette or RGB(A), converted to luminance)."""
    try:
        with Image.open(path) as image:
            image.load()
            return _raster_pixels(path, image)
    except _DECODE_ERRORS as exc:
        raise UnreadableImageError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc}) (rule: "
                                   f"unreadable); the file is corrupt, truncated or not an image: re-export "
                                   f"or re-download it") from exc


def _raster_pixels(path: Path, image: Image.Image) -> np.ndarray:
    """Gray float32 pixels of a loaded Pillow image, or UnsupportedImageError for other modes."""
    mode = image.mode
    if mode in _PIL_SCALE:
        return (np.asarray(image, dtype=np.float32) / _PIL_SCALE[mode]).astype(np.float32)
    if mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise UnsupportedImageError(f"{path}: 32-bit integer pixels outside 0-65535 (rule: unsupported_format); "
                                        f"store the radiograph as 8- or 16-bit gray")
        return (values / 65535.0).astype(np.float32)
    if mode in _PIL_COLOUR:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return (rgb @ _LUMA).astype(np.float32)
    raise UnsupportedImageError(f"{path}: image mode {mode!r} is not supported (rule: unsupported_format); "
                                f"supported are 8/16-bit gray, palette and RGB(A): convert the file")


def _read_dicom(path: Path) -> np.ndarray:
    """Decode a single-frame monochrome DICOM: modality LUT, VOI LUT or window, MONOCHROME1 inverted."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, *_DECODE_ERRORS) as exc:
        raise UnreadableImageError(f"{path}: cannot parse the DICOM file ({type(exc).__name__}) (rule: unreadable); "
                                   f"the file is corrupt or truncated: re-export it") from exc
    if "PixelData" not in dataset:
        raise DicomWithoutPixelsError(f"{path}: DICOM file has no pixel data (rule: no_pixel_data); it is a "
                                      f"header-only object or report, not an image: export the image instance")
    _check_dicom_format(path, dataset)
    try:
        stored = dataset.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        raise UnsupportedImageError(f"{path}: no decoder for transfer syntax {dataset.file_meta.TransferSyntaxUID} "
                                    f"(rule: unsupported_format); decompress the file (e.g. dcmdjpeg) or install "
                                    f"a pydicom decoder plugin") from exc
    except (*_DECODE_ERRORS, AttributeError, KeyError) as exc:
        raise UnreadableImageError(f"{path}: cannot decode the DICOM pixel data ({type(exc).__name__}) (rule: "
                                   f"unreadable); the pixel data is truncated or corrupt: re-export it") from exc
    pixels = _dicom_gray(stored, dataset)
    return 1.0 - pixels if dataset.PhotometricInterpretation == "MONOCHROME1" else pixels


def _check_dicom_format(path: Path, dataset: object) -> None:
    """UnsupportedImageError unless the DICOM is one monochrome frame of 8-16 stored bits."""
    photometric = getattr(dataset, "PhotometricInterpretation", None)
    bits = getattr(dataset, "BitsStored", None)
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImageError(f"{path}: photometric interpretation {photometric!r} (rule: unsupported_format); "
                                    f"only MONOCHROME1/MONOCHROME2 radiographs are read")
    if bits is None or not 8 <= int(bits) <= 16:
        raise UnsupportedImageError(f"{path}: {bits} bits stored (rule: unsupported_format); only 8 to 16 bits "
                                    f"per pixel are read")
    if frames != 1:
        raise UnsupportedImageError(f"{path}: {frames} frames (rule: unsupported_format); export each radiograph "
                                    f"as its own single-frame file")


def _dicom_gray(stored: np.ndarray, dataset: object) -> np.ndarray:
    """Stored values through the modality and VOI transforms, scaled onto [0, 1] by the VOI's output range."""
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    values = apply_modality_lut(stored, dataset)
    if dataset.get("VOILUTSequence"):
        descriptor = dataset.VOILUTSequence[0].LUTDescriptor
        domain = np.arange(descriptor[1], descriptor[1] + (descriptor[0] or 2**16))
        lut = apply_voi(domain, dataset).astype(np.float64)
        low, high = lut.min(), lut.max()
        values = apply_voi(np.rint(values).astype(np.int64), dataset)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        low, high = apply_windowing(np.array([-1e12, 1e12]), dataset)
        values = apply_windowing(values.astype(np.float64), dataset)
    else:
        low, high = float(values.min()), float(values.max())
    span = high - low
    scaled = (values.astype(np.float64) - low) / span if span > 0 else np.zeros(values.shape)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)
