"""Imaging data: decoding (PNG/JPEG/DICOM), manifest validation, importers, duplicates and split, phantoms, dataset."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.stats import chi2_contingency  # noqa: E402

from epiatlas.errors import (  # noqa: E402
    DicomWithoutPixelsError,
    ImageOutsideRootError,
    ImagingError,
    MissingImageError,
    TinyImageError,
    UnreadableImageError,
    UnsupportedImageError,
)
from epiatlas.imaging import CLASSES  # noqa: E402
from epiatlas.imaging.decode import read_image, resize  # noqa: E402
from epiatlas.imaging.dedup import find_duplicates, grouped_split, hamming_pairs  # noqa: E402
from epiatlas.imaging.importers import MANIFEST_COLUMNS, import_class_folders  # noqa: E402
from epiatlas.imaging.manifest import resolve_under, validate_images  # noqa: E402
from epiatlas.imaging.phantoms import (  # noqa: E402
    CORNERS,
    SOURCE,
    class_probabilities,
    encode_png,
    generate_phantoms,
    phantom_studies,
)

PATIENT_NAME = "Doe^Jane"


def ramp(height: int = 80, width: int = 96) -> np.ndarray:
    """A float image with every value in [0, 1] (left to right ramp plus a row term)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return ((xx / (width - 1)) * 0.8 + (yy / (height - 1)) * 0.2).astype(np.float32)


def save_gray(path: Path, pixels: np.ndarray, bits: int = 8) -> Path:
    """Save [0, 1] pixels as an 8- or 16-bit gray PNG."""
    dtype, top = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
    Image.fromarray(np.rint(pixels * top).astype(dtype)).save(path)
    return path


def write_dicom(path: Path, stored: np.ndarray | None, photometric: str = "MONOCHROME2", bits: int = 12,
                **elements: object) -> Path:
    """A minimal uncompressed DICOM file written with pydicom (with a patient name that must never leak)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = "MRN-0042"
    ds.Modality = "CR"
    if stored is not None:
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        ds.PixelData = stored.astype(np.uint16).tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


# --- decoding -------------------------------------------------------------------------------------------------

def test_png_8_and_16_bit_and_rgb_decode_to_unit_gray(tmp_path: Path) -> None:
    pixels = ramp()
    eight = read_image(save_gray(tmp_path / "a.png", pixels))
    sixteen = read_image(save_gray(tmp_path / "b.png", pixels, bits=16))
    assert eight.dtype == np.float32 and eight.shape == (80, 96)
    np.testing.assert_allclose(eight, pixels, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(sixteen, pixels, atol=0.5 / 65535 + 1e-6)
    rgb = np.stack([np.rint(pixels * 255).astype(np.uint8)] * 3, axis=-1)
    rgb[..., 0] = 0  # pure red removed: luminance = 0.587 G + 0.114 B
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_allclose(read_image(tmp_path / "c.png"), (0.587 + 0.114) * np.rint(pixels * 255) / 255,
                               atol=1e-5)


def test_resize_gives_square_unit_image_that_keeps_the_mean(tmp_path: Path) -> None:
    pixels = ramp(200, 240)
    small = read_image(save_gray(tmp_path / "a.png", pixels), size=64)
    assert small.shape == (64, 64) and small.min() >= 0 and small.max() <= 1
    assert small.mean() == pytest.approx(pixels.mean(), abs=0.01)


def test_jpeg_decodes_close_to_its_source(tmp_path: Path) -> None:
    pixels = ramp()
    Image.fromarray(np.rint(pixels * 255).astype(np.uint8)).save(tmp_path / "a.jpeg", quality=95)
    assert np.abs(read_image(tmp_path / "a.jpeg") - pixels).mean() < 0.01


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_png_is_unreadable(tmp_path: Path, cut: float) -> None:
    data = save_gray(tmp_path / "a.png", np.random.default_rng(0).random((128, 128))).read_bytes()
    (tmp_path / "t.png").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(UnreadableImageError, match="t.png.*truncated") as info:
        read_image(tmp_path / "t.png")
    assert info.value.reason == "unreadable"


def test_not_an_image_missing_tiny_and_cmyk_raise_specific_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UnreadableImageError, match="notes.png"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(MissingImageError, match="gone.png.*does not exist"):
        read_image(tmp_path / "gone.png")
    with pytest.raises(TinyImageError, match="96 x 40 px.*64") as tiny:
        read_image(save_gray(tmp_path / "tiny.png", ramp(40, 96)))
    assert tiny.value.reason == "tiny_image"
    Image.new("CMYK", (80, 80), (0, 0, 0, 30)).save(tmp_path / "cmyk.jpeg")
    with pytest.raises(UnsupportedImageError, match="CMYK") as cmyk:
        read_image(tmp_path / "cmyk.jpeg")
    assert cmyk.value.reason == "unsupported_format"


def linear_window(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear VOI function onto [0, 1] (the reference the decoder is checked against)."""
    scaled = ((values - (centre - 0.5)) / (width - 1) + 0.5)
    return np.clip(scaled, 0.0, 1.0)


def test_dicom_12_bit_window_and_rescale_follow_the_standard(tmp_path: Path) -> None:
    stored = (np.arange(96 * 80).reshape(80, 96) * 4095 // (96 * 80 - 1)).astype(np.uint16)
    got = read_image(write_dicom(tmp_path / "w.dcm", stored, WindowCenter=2048, WindowWidth=1024))
    np.testing.assert_allclose(got, linear_window(stored.astype(float), 2048, 1024), atol=1e-5)
    assert (got == 0).any() and (got == 1).any(), "the window clips both ends of a 12-bit ramp"
    rescaled = read_image(write_dicom(tmp_path / "r.dcm", stored, RescaleSlope=2, RescaleIntercept=-1024,
                                      WindowCenter=0, WindowWidth=2000))
    np.testing.assert_allclose(rescaled, linear_window(stored * 2.0 - 1024, 0, 2000), atol=1e-5)


def test_dicom_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    stored = (np.arange(96 * 80).reshape(80, 96) * 4095 // (96 * 80 - 1)).astype(np.uint16)
    table = np.rint(np.sqrt(np.arange(4096) / 4095) * 60000 + 1000).astype(int)
    item = Dataset()
    item.add_new((0x0028, 0x3002), "US", [4096, 0, 16])
    item.add_new((0x0028, 0x3006), "US", table.tolist())
    got = read_image(write_dicom(tmp_path / "lut.dcm", stored, VOILUTSequence=[item]))
    np.testing.assert_allclose(got, (table[stored] - 1000) / 60000, atol=1e-6)


def test_dicom_without_window_is_stretched_and_monochrome1_is_inverted(tmp_path: Path) -> None:
    stored = (ramp() * 3000 + 500).astype(np.uint16)
    plain = read_image(write_dicom(tmp_path / "m2.dcm", stored))
    inverted = read_image(write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1"))
    expected = (stored - stored.min()) / (stored.max() - stored.min())
    np.testing.assert_allclose(plain, expected, atol=1e-6)
    np.testing.assert_allclose(inverted, 1.0 - expected, atol=1e-6)


def test_dicom_found_by_its_marker_without_suffix(tmp_path: Path) -> None:
    stored = (ramp() * 255).astype(np.uint16)
    path = write_dicom(tmp_path / "image.bin", stored, bits=8)
    np.testing.assert_allclose(read_image(path), stored / stored.max(), atol=1e-6)


def test_dicom_without_pixels_or_with_bad_depth_is_named_without_identifiers(tmp_path: Path) -> None:
    with pytest.raises(DicomWithoutPixelsError, match="no pixel data") as info:
        read_image(write_dicom(tmp_path / "report.dcm", None))
    assert info.value.reason == "no_pixel_data"
    with pytest.raises(UnsupportedImageError, match="photometric"):
        read_image(write_dicom(tmp_path / "ybr.dcm", (ramp() * 255).astype(np.uint16), photometric="YBR_FULL",
                               bits=8))
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(write_dicom(tmp_path / "full.dcm", (ramp() * 4000).astype(np.uint16)).read_bytes()[:-3000])
    with pytest.raises(UnreadableImageError) as cut:
        read_image(truncated)
    for error in (info.value, cut.value):
        assert "Doe" not in str(error) and "MRN-0042" not in str(error)


# --- manifest validation --------------------------------------------------------------------------------------

@pytest.fixture()
def image_tree(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """An image root holding one file per quarantine reason and two good images (one with a missing mask)."""
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    save_gray(root / "img" / "good.png", ramp())
    save_gray(root / "img" / "good2.png", ramp().T.copy())
    save_gray(root / "img" / "mask.png", ramp() > 0.5)
    save_gray(root / "img" / "tiny.png", ramp(32, 32))
    data = save_gray(tmp_path / "full.png", np.random.default_rng(1).random((96, 96))).read_bytes()
    (root / "img" / "cut.png").write_bytes(data[: len(data) // 2])
    Image.new("CMYK", (80, 80)).save(root / "img" / "cmyk.jpeg")
    write_dicom(root / "img" / "report.dcm", None)
    save_gray(tmp_path / "secret.png", ramp())
    (root / "img" / "link.png").symlink_to(tmp_path / "secret.png")
    rows = [("good", "img/good.png", "img/mask.png"), ("good2", "img/good2.png", "img/nomask.png"),
            ("missing", "img/none.png", None), ("escape", "../secret.png", None), ("link", "img/link.png", None),
            ("cut", "img/cut.png", None), ("cmyk", "img/cmyk.jpeg", None), ("tiny", "img/tiny.png", None),
            ("report", "img/report.dcm", None), ("good", "img/good2.png", None)]
    manifest = pd.DataFrame(rows, columns=["image_id", "path", "lung_mask_path"]).assign(region_id="R1")
    return root, manifest


def test_validate_images_quarantines_each_bad_file_with_its_reason(image_tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = image_tree
    result = validate_images(manifest, root, file="manifest.csv")
    assert result.accepted["image_id"].tolist() == ["good", "good2"]
    rejected = result.rejected.set_index("row_number")
    assert rejected["rules"].to_dict() == {3: "missing_file", 4: "outside_root", 5: "outside_root", 6: "unreadable",
                                           7: "unsupported_format", 8: "tiny_image", 9: "no_pixel_data",
                                           10: "duplicate_image_id"}
    counts = result.counts()
    assert counts["read"] == len(manifest) == counts["accepted"] + counts["rejected"]
    assert counts["rejected_outside_root"] == 2 and counts["repaired"] == 1
    repaired = result.quarantine[result.quarantine["action"] == "repaired"].iloc[0]
    assert repaired["row_number"] == 2 and repaired["columns"] == "lung_mask_path"
    masks = result.accepted["lung_mask_path"]
    assert masks[0] == "img/mask.png" and pd.isna(masks[1]), "the missing mask is dropped"
    assert json.loads(rejected.loc[4, "raw_values"])["path"] == "../secret.png"
    assert set(result.quarantine["file"]) == {"manifest.csv"}


def test_resolve_under_allows_inner_dots_and_rejects_absolute_escapes(tmp_path: Path) -> None:
    assert resolve_under(tmp_path, "a/../b.png") == (tmp_path / "b.png").resolve()
    with pytest.raises(ImageOutsideRootError, match="outside the image root"):
        resolve_under(tmp_path / "sub", "/etc/passwd")


def test_validate_images_needs_path_and_id_columns(tmp_path: Path) -> None:
    from epiatlas.errors import SchemaMismatchError

    with pytest.raises(SchemaMismatchError, match=r"m.csv.*\['path'\]"):
        validate_images(pd.DataFrame({"image_id": ["a"]}), tmp_path, file="m.csv")


# --- importers ------------------------------------------------------------------------------------------------

def _touch_images(folder: Path, names: list[str], pixels: np.ndarray | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        image = ramp() if pixels is None else pixels
        Image.fromarray(np.rint(np.roll(image, k, axis=1) * 255).astype(np.uint8)).save(folder / name)


def test_pediatric_layout_labels_patients_and_exclusions(tmp_path: Path) -> None:
    _touch_images(tmp_path / "train" / "NORMAL", ["IM-0115-0001.jpeg", "NORMAL2-IM-0007-0001.jpeg"])
    _touch_images(tmp_path / "train" / "PNEUMONIA", ["person1_bacteria_1.jpeg", "person1_virus_6.jpeg",
                                                     "person22_bacteria_77.jpeg"])
    _touch_images(tmp_path / "test" / "PNEUMONIA", ["person3_virus_9.jpeg", "unknown_type.jpeg"])
    _touch_images(tmp_path / "val" / "NORMAL", ["IM-0115-0002.jpeg"])
    (tmp_path / "train" / "NORMAL" / ".DS_Store").write_text("x")
    manifest = import_class_folders(tmp_path, "pediatric_pneumonia")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    by_path = manifest.set_index("path")
    assert by_path["label"].to_dict() == {
        "test/PNEUMONIA/person3_virus_9.jpeg": "viral", "train/NORMAL/IM-0115-0001.jpeg": "normal",
        "train/NORMAL/NORMAL2-IM-0007-0001.jpeg": "normal", "train/PNEUMONIA/person1_bacteria_1.jpeg": "bacterial",
        "train/PNEUMONIA/person1_virus_6.jpeg": "viral", "train/PNEUMONIA/person22_bacteria_77.jpeg": "bacterial",
        "val/NORMAL/IM-0115-0002.jpeg": "normal"}
    patients = by_path["patient_id"]
    assert patients["train/PNEUMONIA/person1_bacteria_1.jpeg"] == patients["train/PNEUMONIA/person1_virus_6.jpeg"]
    assert patients["train/NORMAL/IM-0115-0001.jpeg"] == patients["val/NORMAL/IM-0115-0002.jpeg"]
    assert manifest["patient_id"].nunique() == 5
    assert manifest.attrs["excluded"] == {"pneumonia_without_type": 1}
    assert manifest["image_id"].is_unique and set(manifest["source"]) == {"pediatric_pneumonia"}
    assert len(validate_images(manifest, tmp_path).accepted) == len(manifest)


def test_covid19_layout_masks_and_lung_opacity_excluded(tmp_path: Path) -> None:
    _touch_images(tmp_path / "COVID" / "images", ["COVID-1.png", "COVID-2.png"])
    _touch_images(tmp_path / "COVID" / "masks", ["COVID-1.png"])
    _touch_images(tmp_path / "Normal" / "images", ["Normal-1.png"])
    _touch_images(tmp_path / "Viral Pneumonia" / "images", ["Viral Pneumonia-1.png"])
    _touch_images(tmp_path / "Lung_Opacity" / "images", ["Lung_Opacity-1.png", "Lung_Opacity-2.png"])
    manifest = import_class_folders(tmp_path, "covid19_radiography")
    assert manifest.set_index("path")["label"].to_dict() == {
        "COVID/images/COVID-1.png": "covid19", "COVID/images/COVID-2.png": "covid19",
        "Normal/images/Normal-1.png": "normal", "Viral Pneumonia/images/Viral Pneumonia-1.png": "viral"}
    assert manifest["lung_mask_path"][0] == "COVID/masks/COVID-1.png" and manifest["lung_mask_path"][1:].isna().all()
    assert manifest.attrs["excluded"] == {"Lung_Opacity": 2}
    assert manifest["patient_id"].isna().all()
    with pytest.raises(ImagingError, match="no .* images"):
        import_class_folders(tmp_path / "Lung_Opacity", "covid19_radiography")


# --- phantoms -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("phantoms")
    return root, generate_phantoms(root, 80, 96, seed=7, markers="correlated")


def _digest_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_phantoms_are_reproducible_and_say_they_are_synthetic(tmp_path: Path) -> None:
    first = generate_phantoms(tmp_path / "a", 12, 64, seed=3)
    again = generate_phantoms(tmp_path / "b", 12, 64, seed=3)
    other = generate_phantoms(tmp_path / "c", 12, 64, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert _digest_tree(tmp_path / "a") == _digest_tree(tmp_path / "b")
    assert _digest_tree(tmp_path / "a") != _digest_tree(tmp_path / "c")
    with Image.open(tmp_path / "a" / first["path"][0]) as image:
        assert image.text["Source"] == SOURCE == "synthetic phantom"
    assert set(first["source"]) == {SOURCE} and first["marker_corner"].isna().all()
    required = {"image_id", "path", "region_id", "study_date", "label", "patient_id", "sex", "age", "view",
                "lung_mask_path", "lesion_mask_path", "source"}
    assert required <= set(first.columns)


def test_encode_png_is_read_back_exactly_by_pillow(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    gray, mask = rng.integers(0, 256, (70, 90), dtype=np.uint8), rng.random((70, 93)) > 0.5
    (tmp_path / "g.png").write_bytes(encode_png(gray, {"Source": SOURCE}))
    (tmp_path / "m.png").write_bytes(encode_png(mask))
    with Image.open(tmp_path / "g.png") as image:
        assert image.mode == "L" and image.text == {"Source": SOURCE}
        np.testing.assert_array_equal(np.asarray(image), gray)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "1"
        np.testing.assert_array_equal(np.asarray(image), mask)
    with pytest.raises(ImagingError, match="float32"):
        encode_png(gray.astype(np.float32))


def test_phantom_manifest_values_meet_the_contract(phantoms: tuple[Path, pd.DataFrame]) -> None:
    from epiatlas.contracts import load_contract

    _, manifest = phantoms
    contract = load_contract("cxr_manifest")
    for column in contract.columns:
        if column.allowed:
            assert set(manifest[column.name].dropna()) <= set(column.allowed), column.name
    assert manifest["age"].between(0, 120).all() and manifest["image_id"].is_unique
    assert {d.year for d in manifest["study_date"]} <= {2020, 2021, 2022}
    assert manifest.groupby("patient_id")[["region_id", "sex", "age"]].nunique().max().max() == 1


def _load(root: Path, relative: str) -> np.ndarray:
    return read_image(root / relative)


def test_phantom_findings_sit_in_their_lesion_masks(phantoms: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = phantoms
    lift: dict[str, list[float]] = {c: [] for c in CLASSES}
    for row in manifest.itertuples():
        lung = _load(root, row.lung_mask_path) > 0.5
        lesion = _load(root, row.lesion_mask_path) > 0.5
        assert 0.08 < lung.mean() < 0.4, "two lung fields cover a plausible share of the image"
        if row.label == "normal":
            assert not lesion.any()
            continue
        assert lesion.sum() >= 20 and (lesion & ~lung).sum() <= 0.05 * lesion.sum(), "lesions lie in the lungs"
        image = _load(root, row.path)
        lift[row.label].append(image[lesion].mean() - image[lung & ~lesion].mean() if (lung & ~lesion).any() else 1)
    assert np.median(lift["bacterial"]) > 0.15, "dense consolidation"
    assert np.median(lift["covid19"]) > 0.04, "hazy ground glass"


def _high_frequency_energy(image: np.ndarray, lung: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian inside the lungs (texture at the 2-4 px scale)."""
    laplacian = 4 * image[1:-1, 1:-1] - image[:-2, 1:-1] - image[2:, 1:-1] - image[1:-1, :-2] - image[1:-1, 2:]
    return float((laplacian[lung[1:-1, 1:-1]] ** 2).mean())


def test_viral_pattern_is_high_frequency_texture(phantoms: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = phantoms
    energy = {c: [] for c in CLASSES}
    for row in manifest.itertuples():
        energy[row.label].append(_high_frequency_energy(_load(root, row.path), _load(root, row.lung_mask_path) > 0.5))
    others = energy["normal"] + energy["covid19"]
    assert min(energy["viral"]) > max(others) and np.median(energy["viral"]) > 2 * np.median(others)


def test_correlated_markers_sit_in_the_class_corner(phantoms: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = phantoms
    agree = (manifest["marker_corner"] == manifest["label"].map(dict(zip(CLASSES, CORNERS)))).mean()
    assert agree > 0.75
    for row in manifest.head(10).itertuples():
        image = _load(root, row.path)
        band = image.shape[0] // 8
        rows = slice(0, band) if row.marker_corner.startswith("top") else slice(-band, None)
        cols = slice(0, band) if row.marker_corner.endswith("left") else slice(-band, None)
        assert (image[rows, cols] > 0.85).sum() >= 4, "a bright glyph is burned into the marker corner"


def test_class_shares_vary_by_region_as_specified(tmp_path: Path) -> None:
    regions, periods = ["A", "B", "C"], [2019, 2020]
    small = generate_phantoms(tmp_path, 10, 64, seed=11, regions=pd.DataFrame({"region_id": regions}),
                              periods=periods)
    pd.testing.assert_frame_equal(small.drop(columns="marker_corner"), phantom_studies(10, 11, regions, periods))
    manifest = phantom_studies(6000, 11, regions, periods)
    table = pd.crosstab(manifest["region_id"], manifest["label"])
    assert chi2_contingency(table).pvalue < 1e-6, "regions differ in their class mix"
    truth = class_probabilities(regions, periods, seed=11).set_index(["region_id", "period"])
    manifest["period"] = [d.year for d in manifest["study_date"]]
    for (region, period), cell in manifest.groupby(["region_id", "period"]):
        expected = truth.loc[(region, period), list(CLASSES)].to_numpy(float)
        observed = cell["label"].value_counts().reindex(CLASSES, fill_value=0).to_numpy() / len(cell)
        assert np.all(np.abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / len(cell))), region
    covid = truth["covid19"].unstack("period")
    assert (covid[2020] > covid[2019]).all(), "COVID-19 rises with the period"


def test_phantom_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ImagingError, match="size >= 64"):
        generate_phantoms(tmp_path, 3, 32, seed=0)
    with pytest.raises(ImagingError, match="region_id"):
        generate_phantoms(tmp_path, 3, 64, seed=0, regions=pd.DataFrame({"code": ["A"]}))


# --- duplicates and split -------------------------------------------------------------------------------------

def test_resized_noised_and_exact_copies_are_found_across_sources(phantoms: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = phantoms
    rng = np.random.default_rng(5)
    original = _load(root, manifest["path"][0])
    copy = np.clip(resize(original, 140) + rng.normal(0, 0.03, (140, 140)).astype(np.float32), 0, 1)
    (root / "other").mkdir(exist_ok=True)
    Image.fromarray(np.rint(copy * 255).astype(np.uint8)).save(root / "other" / "resized.jpeg", quality=90)
    Image.open(root / manifest["path"][1]).save(root / "other" / "exact.png")
    extra = pd.DataFrame({"image_id": ["x-resized", "x-exact"], "path": ["other/resized.jpeg", "other/exact.png"],
                          "source": "covid19_radiography"})
    merged = pd.concat([manifest, extra], ignore_index=True)
    found = find_duplicates(merged, root)
    pairs = {(a, b): kind for a, b, kind in found[["image_id_a", "image_id_b", "kind"]].itertuples(index=False)}
    assert pairs == {(manifest["image_id"][0], "x-resized"): "near", (manifest["image_id"][1], "x-exact"): "exact"}
    assert set(found["source_a"]) == {SOURCE} and set(found["source_b"]) == {"covid19_radiography"}


def test_hamming_pairs_equal_a_brute_force_count() -> None:
    rng = np.random.default_rng(4)
    hashes = rng.integers(0, 2**63, 700, dtype=np.uint64)
    flips = [np.uint64(sum(1 << int(bit) for bit in rng.choice(64, k, replace=False))) for k in range(1, 6)] * 40
    hashes[500:700] = hashes[:200] ^ np.array(flips, dtype=np.uint64)  # copies 1 to 5 bits away
    i, j = hamming_pairs(hashes, threshold=3)
    expected = {(a, b) for a in range(700) for b in range(a + 1, 700) if int(hashes[a] ^ hashes[b]).bit_count() <= 3}
    assert set(zip(i.tolist(), j.tolist())) == expected and len(i) == len(expected) >= 120


def test_grouped_split_keeps_patients_and_duplicates_together(phantoms: tuple[Path, pd.DataFrame]) -> None:
    _, manifest = phantoms
    ids = manifest["image_id"]
    duplicates = pd.DataFrame({"image_id_a": [ids[0], ids[5], ids[6]], "image_id_b": [ids[40], ids[6], ids[70]]})
    split = grouped_split(manifest, duplicates, test_share=0.2, val_share=0.2, seed=1)
    assert split["image_id"].tolist() == ids.tolist()
    side = dict(zip(split["image_id"], split["split"]))
    for a, b in duplicates.itertuples(index=False):
        assert side[a] == side[b]
    assert split.assign(patient=manifest["patient_id"]).groupby("patient")["split"].nunique().max() == 1
    assert split.groupby("group")["split"].nunique().max() == 1
    assert (split["group"][[0, 40]].nunique(), split["group"][[5, 6, 70]].nunique()) == (1, 1)
    shares = split["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.1) and shares["test"] == pytest.approx(0.2, abs=0.1)
    for label, part in split.assign(label=manifest["label"]).groupby("label"):
        assert part["split"].nunique() == 3, f"{label} is stratified over train, val and test"
    pd.testing.assert_frame_equal(split, grouped_split(manifest, duplicates, 0.2, 0.2, seed=1))
    assert not split["split"].equals(grouped_split(manifest, duplicates, 0.2, 0.2, seed=2)["split"])
    with pytest.raises(ImagingError, match="sum below 1"):
        grouped_split(manifest, duplicates, 0.6, 0.5, seed=1)


# --- dataset --------------------------------------------------------------------------------------------------

def test_dataset_items_and_batches(phantoms: tuple[Path, pd.DataFrame]) -> None:
    import torch
    from torch.utils.data import DataLoader

    from epiatlas.imaging.dataset import CxrDataset

    root, manifest = phantoms
    subset = manifest.head(6).copy()
    subset.loc[1, "label"] = None
    subset.loc[2, "lung_mask_path"] = None
    dataset = CxrDataset(subset, root, size=64, with_masks=True)
    item = dataset[0]
    assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
    assert item["label"] == CLASSES.index(subset["label"][0]) and item["index"] == 0
    assert item["lung_mask"].dtype == torch.bool and item["has_mask"] and item["lung_mask"].any()
    np.testing.assert_allclose(item["image"][0].numpy(), read_image(root / subset["path"][0], 64))
    assert dataset[1]["label"] == -1
    assert not dataset[2]["has_mask"] and not dataset[2]["lung_mask"].any()
    batch = next(iter(DataLoader(dataset, batch_size=6)))
    assert batch["image"].shape == (6, 1, 64, 64) and batch["index"].tolist() == list(range(6))
    assert "lung_mask" not in CxrDataset(subset, root, size=64)[0]
    with pytest.raises(ImagingError, match="pneumonia"):
        CxrDataset(subset.assign(label="pneumonia"), root, size=64)


def test_phantoms_flow_through_validation_split_dataset_and_prediction(tmp_path: Path) -> None:
    from epiatlas.imaging.dataset import CxrDataset
    from epiatlas.imaging.inference import predict
    from epiatlas.imaging.models import build_model

    manifest = generate_phantoms(tmp_path, 24, 64, seed=9)
    validation = validate_images(manifest, tmp_path)
    assert validation.counts() == {"read": 24, "accepted": 24, "rejected": 0, "repaired": 0}
    split = grouped_split(validation.accepted, find_duplicates(validation.accepted, tmp_path), 0.25, 0.25, seed=0)
    test_rows = validation.accepted[split["split"].eq("test").to_numpy()].reset_index(drop=True)
    predictions = predict(build_model("epiatlas_cxr_small"), CxrDataset(test_rows, tmp_path, 64), batch_size=4)
    assert predictions["index"].tolist() == list(range(len(test_rows)))
    probabilities = predictions[[f"p_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
