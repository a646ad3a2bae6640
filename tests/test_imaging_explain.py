"""CXR explanations: Grad-CAM against captum and a hand-split forward, summaries on known maps, lung fields on
phantoms, shortcut verdicts, overlay and comparison figures, and a marker-shortcut model flagged end to end."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: the machine is shared

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerGradCam

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.imaging.attention import (
    SUMMARY_COLUMNS,
    attention_summary,
    border_band,
    explain,
    lesion_mass_share,
    off_lung,
    pointing_game,
    shortcut_warning,
)
from epiatlas.imaging.attribution_compare import attribution_maps, compare_attributions
from epiatlas.imaging.dataset import CxrDataset, read_mask
from epiatlas.imaging.gradcam import gradcam, normalise, target_layer
from epiatlas.imaging.lungs import dice, lung_fields, otsu_thresholds
from epiatlas.imaging.models import build_model
from epiatlas.imaging.overlays import overlay_png
from epiatlas.imaging.phantoms import generate_phantoms
from epiatlas.imaging.settings import TrainSettings
from epiatlas.imaging.training import train_classifier

PNG = b"\x89PNG\r\n\x1a\n"
ARCHS = [("epiatlas_cxr_small", 64), ("resnet18", 64), ("densenet121", 64)]


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


def _model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(arch).eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _manual_gradcam(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Grad-CAM on the timm feature map without hooks: forward_features, retain its grad, forward_head."""
    features = model.forward_features(images)
    features.retain_grad()
    logits = model.forward_head(features)
    logits.gather(1, targets[:, None]).sum().backward()
    cam = (features.grad.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1).detach()
    model.zero_grad(set_to_none=True)
    return cam


# Grad-CAM


@pytest.mark.parametrize(("arch", "size"), ARCHS)
def test_gradcam_equals_captum_and_a_hand_split_forward(arch: str, size: int) -> None:
    model, images = _model(arch), _images(3, size)
    batch = gradcam(model, target_layer(model, arch), images)
    captum = LayerGradCam(model, target_layer(model, arch)).attribute(images, target=batch.targets)[:, 0]
    manual = _manual_gradcam(model, images, batch.targets)
    r = np.corrcoef(batch.raw.flatten().numpy(), captum.detach().flatten().numpy())[0, 1]
    assert r >= 0.999
    torch.testing.assert_close(batch.raw, captum.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(batch.raw, manual, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(batch.logits, model(images))
    assert torch.equal(batch.targets, batch.logits.argmax(dim=1))
    torch.testing.assert_close(batch.probs.sum(dim=1), torch.ones(3))
    assert batch.normalised.shape == (3, size, size)


def test_densenet_layer_has_no_inplace_activation_and_reads_what_the_head_reads() -> None:
    model = _model("densenet121")
    layer = target_layer(model, "densenet121")
    assert layer is model.features
    assert not any(getattr(m, "inplace", False) for m in layer.modules())
    images = _images(2, 64, seed=4)
    batch = gradcam(model, layer, images, target=2)
    torch.testing.assert_close(batch.raw, _manual_gradcam(model, images, torch.tensor([2, 2])), rtol=1e-4, atol=1e-6)


def test_chosen_class_changes_the_map_and_bad_targets_are_named() -> None:
    model, images = _model("epiatlas_cxr_small"), _images(4, 64)
    layer = target_layer(model, "epiatlas_cxr_small")
    per_class = [gradcam(model, layer, images, target=k) for k in range(len(CLASSES))]
    assert all(torch.equal(b.targets, torch.full((4,), k)) for k, b in enumerate(per_class))
    assert not torch.allclose(per_class[1].raw, per_class[2].raw)
    mixed = gradcam(model, layer, images, target=torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(mixed.raw[2], per_class[2].raw[2])
    with pytest.raises(ImagingError, match="not a class index 0..3"):
        gradcam(model, layer, images, target=4)
    with pytest.raises(ImagingError, match=r"batch \[N, 1, H, W\]"):
        gradcam(model, layer, images[0])


def test_gradcam_leaves_weights_grads_and_batchnorm_statistics_alone_and_works_frozen() -> None:
    model = _model("epiatlas_cxr_small").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.requires_grad_(False)  # a feature-extraction model with a frozen backbone (and head here)
    batch = gradcam(model, target_layer(model, "epiatlas_cxr_small"), _images(4, 64))
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert batch.raw.abs().sum() > 0
    assert torch.is_grad_enabled()  # the hook's recording switch does not outlive the call
    with torch.no_grad():
        inside = gradcam(model, target_layer(model, "epiatlas_cxr_small"), _images(4, 64))
        assert not torch.is_grad_enabled()
    torch.testing.assert_close(inside.raw, batch.raw)


def test_normalised_map_is_the_upsampled_positive_part_scaled_to_one() -> None:
    raw = torch.tensor([[[1.0, -2.0], [0.5, 3.0]], [[-1.0, -1.0], [-1.0, -1.0]]])
    maps = normalise(raw, (4, 4))
    assert maps.shape == (2, 4, 4)
    assert float(maps[0].max()) == 1.0 and float(maps[0].min()) >= 0.0
    assert float(maps[0, 3, 3]) == 1.0 and float(maps[0, 0, 3]) == 0.0  # corner of the 3.0 cell / of the -2 cell
    assert torch.equal(maps[1], torch.zeros(4, 4))  # no positive heat: all zero, no division by zero


def test_target_layer_defaults_names_and_errors() -> None:
    small, resnet = _model("epiatlas_cxr_small"), _model("resnet18")
    assert target_layer(small, "epiatlas_cxr_small") is small.stages[-1]
    assert target_layer(resnet, "resnet18") is resnet.layer4
    assert target_layer(resnet, "resnet18", name="layer3.1") is resnet.layer3[1]
    with pytest.raises(ImagingError, match="imaging.gradcam_layer"):
        target_layer(_model("mobilenetv3_small_100"), "mobilenetv3_small_100")
    with pytest.raises(ImagingError, match="'layer9' does not exist in resnet18"):
        target_layer(resnet, "resnet18", name="layer9")


# summaries


def test_attention_summary_of_known_maps() -> None:
    h = w = 50
    maps = torch.zeros(4, h, w)
    maps[0, 1, 2] = 1.0  # one hot pixel in the border band
    maps[1] = 1.0  # uniform
    maps[2, 20:30, 10:20] = 0.5  # a block inside the lungs, on the image's left
    lungs = torch.zeros(4, h, w, dtype=torch.bool)
    lungs[:, 15:35, 8:22] = True
    summary = attention_summary(maps, lungs)
    assert list(summary.columns) == SUMMARY_COLUMNS
    one, uniform, block, empty = (summary.iloc[i] for i in range(4))
    assert one.border_share == 1.0 and one.lung_share == 0.0 and (one.peak_row, one.peak_col) == (1, 2)
    assert one.entropy == pytest.approx(0.0, abs=1e-6) and one.left_share == pytest.approx(1.0)
    band = 1 - (38 / 50) ** 2  # a 6-pixel band on each side
    assert float(border_band(h, w).float().mean()) == pytest.approx(band)
    assert uniform.border_share == pytest.approx(band) and uniform.entropy == pytest.approx(1.0)
    assert uniform.lung_share == pytest.approx(uniform.lung_area) and uniform.left_share == pytest.approx(0.5)
    assert block.lung_share == pytest.approx(1.0) and block.border_share == 0.0
    assert block.left_share == pytest.approx(1.0)
    assert block.entropy == pytest.approx(math.log(100) / math.log(h * w))
    assert not empty.has_heat and math.isnan(empty.lung_share) and math.isnan(empty.entropy)
    assert summary["has_heat"].tolist() == [True, True, True, False]
    with pytest.raises(ImagingError, match="same shape"):
        attention_summary(maps, lungs[:, :10])


def test_border_band_is_twelve_percent_of_each_side() -> None:
    band = border_band(100, 200)
    assert band[11, 100] and not band[12, 100] and band[50, 23] and not band[50, 24] and band[88, 100]


def test_left_share_splits_an_odd_centre_column() -> None:
    maps = torch.zeros(2, 5, 5)
    maps[0, :, 2] = 1.0  # the centre column only
    maps[1, :, 1] = 1.0  # just left of it
    shares = attention_summary(maps, torch.zeros(2, 5, 5, dtype=torch.bool))["left_share"]
    assert shares.tolist() == pytest.approx([0.5, 1.0])


def test_pointing_game_and_lesion_mass_on_hand_cases() -> None:
    maps = torch.zeros(3, 20, 20)
    maps[0, 5, 5] = maps[1, 10, 13] = maps[2, 0, 0] = 1.0
    lesions = torch.zeros(3, 20, 20, dtype=torch.bool)
    lesions[0, 4:7, 4:7] = True  # peak on the lesion
    lesions[1, 10:12, 10:11] = True  # peak 3 px to the right of it
    assert pointing_game(maps, lesions) == 0.5  # image 2 has no lesion and is not scored
    assert pointing_game(maps, lesions, tolerance_px=2) == 0.5
    assert pointing_game(maps, lesions, tolerance_px=3) == 1.0
    shares = lesion_mass_share(maps, lesions)
    assert shares[:2].tolist() == [1.0, 0.0] and shares[2] == 0.0
    with pytest.raises(ImagingError, match="no image has a lesion"):
        pointing_game(maps, torch.zeros_like(lesions))


def _summaries(n: int, border: float, lung: float, area: float = 0.2) -> pd.DataFrame:
    return pd.DataFrame({"has_heat": True, "lung_area": area, "lung_share": lung, "border_share": border,
                         "peak_row": 0, "peak_col": 0, "left_share": 0.5, "entropy": 0.9}, index=range(n))  # fmt: skip


def test_shortcut_verdicts_and_their_evidence() -> None:
    border = shortcut_warning(_summaries(30, border=0.5, lung=0.3))
    assert border.flagged and border.judged and "border band 0.50 > 0.30" in border.reason
    assert border.n_images == 30 and border.share_off_lung == 1.0
    off = shortcut_warning(_summaries(30, border=0.1, lung=0.1))
    assert off.flagged and "on the lungs 0.10 < their area share 0.20" in off.reason
    good = shortcut_warning(_summaries(30, border=0.1, lung=0.5))
    assert not good.flagged and good.judged and good.mean_lung_share == pytest.approx(0.5)
    few = shortcut_warning(_summaries(10, border=0.9, lung=0.0))
    assert not few.flagged and not few.judged and "fewer than 20" in few.reason
    cold = _summaries(30, border=0.9, lung=0.0).assign(has_heat=[True] * 5 + [False] * 25)
    assert not shortcut_warning(cold).judged  # images without heat do not count
    assert off_lung(_summaries(2, border=0.1, lung=0.5)).tolist() == [False, False]
    with pytest.raises(ImagingError, match="columns"):
        shortcut_warning(pd.DataFrame({"border_share": [0.5]}))


# lung fields


def test_otsu_thresholds_split_known_modes() -> None:
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0.2, 0.03, 5000), rng.normal(0.7, 0.03, 3000)]).clip(0, 1)
    (t,) = otsu_thresholds(two)
    assert 0.3 < t < 0.6
    three = np.concatenate([two, rng.normal(0.45, 0.02, 4000)]).clip(0, 1)
    low, high = otsu_thresholds(three, classes=3)
    assert 0.25 < low < 0.4 < high < 0.65
    with pytest.raises(ImagingError, match="classes=4"):
        otsu_thresholds(two, classes=4)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("phantoms")
    return root, generate_phantoms(root, 40, 128, seed=11)


def test_lung_fields_match_the_phantoms_true_lungs(phantoms: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = phantoms
    data = CxrDataset(manifest, root, 128, with_masks=True)
    scores = pd.Series([dice(lung_fields(data[i]["image"]), data[i]["lung_mask"]) for i in range(len(data))],
                       index=manifest["label"])  # fmt: skip
    assert scores.mean() >= 0.9
    assert scores.groupby(level=0).mean().min() >= 0.8
    assert scores.min() >= 0.6


def test_lung_fields_refuses_blank_and_malformed_images() -> None:
    with pytest.raises(ImagingError, match="give a lung mask"):
        lung_fields(np.zeros((64, 64), np.float32))
    with pytest.raises(ImagingError, match="one gray image"):
        lung_fields(np.zeros((2, 64, 64), np.float32))
    assert dice(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0


def test_explain_gives_predictions_and_summaries_with_manifest_or_computed_lungs(
    phantoms: tuple[Path, pd.DataFrame],
) -> None:
    root, manifest = phantoms
    model = _model("epiatlas_cxr_small")
    layer = target_layer(model, "epiatlas_cxr_small")
    part = manifest.head(12).assign(lung_mask_path=[None] * 3 + manifest["lung_mask_path"].head(12).tolist()[3:])
    table = explain(model, layer, CxrDataset(part, root, 128, with_masks=True), batch_size=5, device="cpu")
    assert table["index"].tolist() == list(range(12))
    assert table["lung_mask_source"].tolist() == ["lung_fields"] * 3 + ["manifest"] * 9
    images = torch.stack([CxrDataset(part, root, 128)[i]["image"] for i in range(12)])
    direct = gradcam(model, layer, images)
    np.testing.assert_allclose(table[[f"p_{c}" for c in CLASSES]].to_numpy(), direct.probs.numpy(), rtol=1e-5)
    masks = torch.stack([torch.from_numpy(read_mask(root / p, 128)) for p in manifest["lung_mask_path"].head(12)])
    expected = attention_summary(direct.normalised, masks)
    pd.testing.assert_frame_equal(table.loc[3:, SUMMARY_COLUMNS].reset_index(drop=True),
                                  expected.loc[3:].reset_index(drop=True), atol=1e-5)  # fmt: skip
    assert (table["explained_class"] == table["predicted_class"]).all()
    again = explain(model, layer, CxrDataset(part, root, 128, with_masks=True), batch_size=12, device="cpu")
    pd.testing.assert_frame_equal(table, again, atol=1e-6)


# figures


def test_overlay_png_is_a_stable_png_with_a_small_preview() -> None:
    image, heat = _images(1, 64)[0], torch.rand(64, 64, generator=torch.Generator().manual_seed(2))
    full = overlay_png(image, heat, "bacterial", synthetic=True)
    assert full.startswith(PNG) and full == overlay_png(image, heat, "bacterial", synthetic=True)
    assert len(overlay_png(image, heat, size="preview")) < len(full)
    assert full != overlay_png(image, heat.flip(0), "bacterial", synthetic=True)
    with pytest.raises(ImagingError, match="differ in size"):
        overlay_png(image, heat[:32])


def test_attribution_comparison_panels_per_architecture() -> None:
    image = _images(1, 64, seed=5)[0]
    small = _model("epiatlas_cxr_small")
    maps = attribution_maps(small, image, "epiatlas_cxr_small")
    assert maps["predicted"] in CLASSES
    for name in ("gradcam", "lrp", "occlusion", "contrastive"):
        assert isinstance(maps[name], torch.Tensor) and maps[name].shape == (64, 64)
        assert float(maps[name].abs().max()) == pytest.approx(1.0)
    layer = target_layer(small, "epiatlas_cxr_small")
    first, second = (gradcam(small, layer, image[None], target=CLASSES.index(c)).raw for c in ("bacterial", "viral"))
    difference = torch.nn.functional.interpolate((first - second)[:, None], size=(64, 64), mode="bilinear")[0, 0]
    torch.testing.assert_close(maps["contrastive"], difference / difference.abs().max())
    resnet = _model("resnet18")
    assert "LRP not available" in attribution_maps(resnet, image, "resnet18")["lrp"]
    png = compare_attributions(resnet, image, "resnet18", size="preview", synthetic=True)
    assert png.startswith(PNG) and png == compare_attributions(resnet, image, "resnet18", size="preview",
                                                               synthetic=True)  # fmt: skip


# a marker shortcut, end to end on phantoms

SHORTCUT_SIZE, SHORTCUT_N = 96, 800


@dataclass
class ShortcutRun:
    """A small CNN trained on phantoms with or without class-correlated markers, and its held-out explanations."""

    model: torch.nn.Module
    layer: torch.nn.Module
    table: pd.DataFrame
    test: pd.DataFrame
    root: Path


def _train_and_explain(root: Path, markers: str) -> ShortcutRun:
    root = root / markers
    manifest = generate_phantoms(root, SHORTCUT_N, SHORTCUT_SIZE, seed=7, markers=markers)
    cut = [int(0.7 * SHORTCUT_N), int(0.85 * SHORTCUT_N)]
    train, val, test = manifest.iloc[: cut[0]], manifest.iloc[cut[0] : cut[1]], manifest.iloc[cut[1] :]
    settings = TrainSettings(image_size=SHORTCUT_SIZE, epochs=4, patience=4, seed=1, threads=2, device="cpu")
    trained = train_classifier(CxrDataset(train, root, SHORTCUT_SIZE), CxrDataset(val, root, SHORTCUT_SIZE),
                               settings)  # fmt: skip
    test = test.reset_index(drop=True)
    layer = target_layer(trained.model, trained.arch)
    table = explain(trained.model, layer, CxrDataset(test, root, SHORTCUT_SIZE, with_masks=True), 32, "cpu")
    return ShortcutRun(trained.model, layer, table, test, root)


@pytest.fixture(scope="module")
def shortcut_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ShortcutRun]:
    root = tmp_path_factory.mktemp("shortcut")
    return {markers: _train_and_explain(root, markers) for markers in ("correlated", "none")}


@pytest.mark.slow
def test_marker_shortcut_model_is_flagged_and_clean_model_is_not(shortcut_runs: dict[str, ShortcutRun]) -> None:
    marked, clean = (shortcut_warning(shortcut_runs[m].table) for m in ("correlated", "none"))
    assert marked.judged and marked.flagged, marked
    assert clean.judged and not clean.flagged, clean
    assert marked.mean_border_share > clean.mean_border_share + 0.1
    assert clean.mean_lung_share > 1.5 * clean.mean_lung_area


@pytest.mark.slow
def test_clean_model_points_at_bacterial_lesions(shortcut_runs: dict[str, ShortcutRun]) -> None:
    run = shortcut_runs["none"]
    bacterial = run.test[run.test["label"] == "bacterial"].reset_index(drop=True)
    assert len(bacterial) >= 10
    data = CxrDataset(bacterial, run.root, SHORTCUT_SIZE)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    lesions = torch.stack([torch.from_numpy(read_mask(run.root / p, SHORTCUT_SIZE))
                           for p in bacterial["lesion_mask_path"]])  # fmt: skip
    maps = gradcam(run.model, run.layer, images, target=CLASSES.index("bacterial")).normalised
    assert pointing_game(maps, lesions, tolerance_px=4) >= 0.5
    assert float(lesion_mass_share(maps, lesions).mean()) > 2 * float(lesions.float().mean())
