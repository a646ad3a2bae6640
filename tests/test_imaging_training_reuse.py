"""The classifier is trained once per training fingerprint: a refresh with unchanged inputs reuses the checkpoint."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: the machine is shared

import re
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from epiatlas.config import dump_config, load_config
from epiatlas.contracts import load_contract
from epiatlas.contracts.conform import write_conformed
from epiatlas.errors import ImagingError
from epiatlas.imaging import fingerprint, training
from epiatlas.imaging.decode import read_image
from epiatlas.imaging.fingerprint import training_fingerprint, training_frames
from epiatlas.imaging.phantoms import DEFAULT_REGIONS, encode_png, generate_phantoms
from epiatlas.imaging.settings import AugmentSettings, TrainSettings
from epiatlas.publish import warehouse_for
from orchestration.defs.imaging import cxr_images, cxr_model, cxr_predictions
from orchestration.resources import EpiatlasResource

TRAIN = {"image_size": 32, "epochs": 2, "batch_size": 8, "patience": 2, "threads": 1, "device": "cpu",
         "precision": "fp32"}  # fmt: skip


def _config(small_demo: Path, folder: Path, **train: object) -> Path:
    """The small demo's config with its own warehouse, a 60-phantom image set and `train` over fast settings."""
    cfg = load_config(small_demo)
    imaging = cfg.imaging.model_copy(update={
        "image_root": folder / "cxr", "batch_size": 64,
        "train": cfg.imaging.train.model_validate({**TRAIN, **train}),
    })  # fmt: skip
    moved = cfg.model_copy(update={"warehouse": cfg.warehouse.model_copy(update={"root": folder / "wh"}),
                                   "imaging": imaging})  # fmt: skip
    config = folder / "config.yaml"
    dump_config(moved, config)
    return config


@pytest.fixture
def setup(small_demo: Path, tmp_path: Path) -> Path:
    """Config of 60 phantoms stored as the cxr_manifest table (ingest's output), with their regions, in a fresh
    warehouse."""
    manifest = generate_phantoms(tmp_path / "cxr", 60, 64, seed=2).drop(columns="marker_corner")
    config = _config(small_demo, tmp_path)
    warehouse = warehouse_for(load_config(config))
    write_conformed(warehouse, load_contract("cxr_manifest"), manifest)
    contract = load_contract("regions")
    regions = pd.DataFrame({c.name: [None] * len(DEFAULT_REGIONS) for c in contract.columns})
    regions["region_id"] = list(DEFAULT_REGIONS)
    write_conformed(warehouse, contract, regions)
    return config


def _materialize(config: Path, assets: tuple = (cxr_images, cxr_model)) -> tuple[dict, list[str], str]:
    """Materialize `assets` in process: cxr_model's metadata (plain values), the run's log lines, the run id."""
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(list(assets), resources={"epiatlas": EpiatlasResource(config_path=str(config))},
                                instance=instance)  # fmt: skip
        assert result.success
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    metadata = result.asset_materializations_for_node("cxr_model")[0].metadata
    return {k: v.value for k, v in metadata.items()}, logs, result.run_id


def _table(config: Path, name: str) -> pd.DataFrame:
    with warehouse_for(load_config(config)).connect([name]) as con:
        return con.table(name).df()


def _forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("train_classifier was called although the inputs did not change")

    monkeypatch.setattr(training, "train_classifier", refuse)


def test_unchanged_inputs_reuse_the_checkpoint_and_downstream_is_unchanged(setup, monkeypatch) -> None:
    assets = (cxr_images, cxr_model, cxr_predictions)
    first, first_logs, first_run = _materialize(setup, assets)
    assert first["reused"] is False and first["reason"] == "no stored checkpoint with a training record"
    epochs = [line for line in first_logs if line.startswith("epoch ")]
    assert len(epochs) == len(first["history"]) >= 1
    line = r"epoch \d/2: train loss \d+\.\d{4}, val macro AUC \d\.\d{3}, \d+\.\d s"
    assert all(re.fullmatch(line, e) for e in epochs), epochs
    model, predictions = _table(setup, "cxr_model"), _table(setup, "cxr_predictions")

    _forbid_training(monkeypatch)
    second, second_logs, _ = _materialize(setup, assets)
    assert second["reused"] is True and second["train_seconds"] == 0.0
    assert (second["model_version"], second["fingerprint"]) == (first["model_version"], first["fingerprint"])
    assert (second["trained_by_run"], second["trained_at"]) == (first_run, first["trained_at"])
    assert second["history"] == first["history"]
    assert (f"reusing checkpoint {first['model_version']} (fingerprint {first['fingerprint']}), "
            f"trained {first['trained_at']} by run {first_run}: inputs unchanged") in second_logs  # fmt: skip
    assert not any(line.startswith("epoch ") for line in second_logs)
    pd.testing.assert_frame_equal(_table(setup, "cxr_model"), model)
    pd.testing.assert_frame_equal(_table(setup, "cxr_predictions"), predictions)


def test_a_changed_setting_retrains_and_names_it(setup, small_demo, tmp_path) -> None:
    first, _, _ = _materialize(setup)
    _config(small_demo, tmp_path, lr=0.01)
    second, logs, _ = _materialize(setup)
    assert second["reused"] is False
    assert second["reason"] == "changed since the stored checkpoint was trained: settings (lr 0.003 -> 0.01)"
    assert second["fingerprint"] != first["fingerprint"] and second["model_version"] != first["model_version"]
    assert any(line.startswith("training epiatlas_cxr_small") and "settings (lr 0.003 -> 0.01)" in line
               for line in logs)  # fmt: skip


def test_changed_pixels_of_one_training_image_retrain(setup) -> None:
    first, _, _ = _materialize(setup)
    images = _table(setup, "cxr_images")
    path = load_config(setup).imaging.image_root / images.loc[images["split"] == "train", "path"].iloc[0]
    pixels = read_image(path)
    pixels[:4, :4] = 1.0 - pixels[:4, :4]  # a corner changed: still the same image to the duplicate finder
    path.write_bytes(encode_png(np.rint(pixels * 255).astype(np.uint8)))
    second, _, _ = _materialize(setup)
    assert second["reused"] is False
    assert second["reason"] == "changed since the stored checkpoint was trained: train_images (content)"
    assert second["fingerprint_components"]["val_images"] == first["fingerprint_components"]["val_images"]


def test_a_changed_label_retrains_and_names_the_label_counts(setup) -> None:
    _materialize(setup)
    warehouse = warehouse_for(load_config(setup))
    manifest = _table(setup, "cxr_manifest")
    images = _table(setup, "cxr_images")
    changed = images.loc[(images["split"] == "train") & (images["label"] == "normal"), "image_id"].iloc[0]
    manifest.loc[manifest["image_id"] == changed, "label"] = "viral"
    write_conformed(warehouse, load_contract("cxr_manifest"), manifest)
    second, _, _ = _materialize(setup)
    assert second["reused"] is False
    assert re.search(r"train_images \([^)]*label normal (\d+) -> (?!\1)\d+", second["reason"]), second["reason"]


def test_retrain_forces_training_and_gives_the_same_weights(setup, small_demo, tmp_path) -> None:
    first, _, _ = _materialize(setup)
    _config(small_demo, tmp_path, retrain=True)
    forced, logs, run = _materialize(setup)
    assert forced["reused"] is False and forced["reason"] == "retraining forced by imaging.train.retrain"
    assert forced["trained_by_run"] == run and any(line.startswith("epoch 1/2") for line in logs)
    assert (forced["model_version"], forced["fingerprint"]) == (first["model_version"], first["fingerprint"])
    _config(small_demo, tmp_path)
    again, _, _ = _materialize(setup)
    assert again["reused"] is True and again["trained_by_run"] == run  # retrain is not part of the fingerprint


def test_a_replaced_checkpoint_is_not_trusted(setup) -> None:
    first, _, _ = _materialize(setup)
    checkpoint = next((load_config(setup).warehouse.root / "artifacts" / "cxr_classifier").glob("*.pt"))
    checkpoint.write_bytes(checkpoint.read_bytes() + b"\0")
    second, _, _ = _materialize(setup)
    assert second["reused"] is False
    assert re.fullmatch(r"the stored checkpoint \([0-9a-f]{12}\) is not the one its training record describes "
                        r"\([0-9a-f]{12}\)", second["reason"]), second["reason"]
    assert second["model_version"] == first["model_version"]  # retrained: the same bytes as the first time


def _frames(labels: list[str], **columns: object) -> dict[str, pd.DataFrame]:
    images = pd.DataFrame({"image_id": [f"i{k}" for k in range(len(labels))], "label": labels,
                           "pixel_sha256": [f"{k:064x}" for k in range(len(labels))],
                           "path": [f"a/{k}.png" for k in range(len(labels))], "split": ["train", "val"] * 2})
    return training_frames(images.assign(**columns))


def test_fingerprint_follows_content_and_settings_not_paths_ids_or_workers(tmp_path, monkeypatch) -> None:
    weights = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path in weights:
        path.write_bytes(b"same weights")
    labels = ["normal", "viral", "viral", "normal"]
    base = training_fingerprint(_frames(labels), TrainSettings(pretrained_checkpoint=weights[0]))
    same = training_fingerprint(_frames(labels, path="b/x.png", image_id=list("wxyz")),
                                TrainSettings(pretrained_checkpoint=weights[1], num_workers=4))  # fmt: skip
    assert same == base and len(base.digest) == 16
    other = TrainSettings(pretrained_checkpoint=weights[0], augment=AugmentSettings(max_shift=2))
    assert training_fingerprint(_frames(labels), other).changes(base) == ["settings (augment.max_shift 6 -> 2)"]
    relabelled = training_fingerprint(_frames(["normal", "viral", "covid19", "normal"]), TrainSettings(
        pretrained_checkpoint=weights[0]))  # fmt: skip
    assert relabelled.changes(base) == ["train_images (label covid19 0 -> 1, label viral 1 -> 0)"]
    weights[0].write_bytes(b"other weights")
    changed = training_fingerprint(_frames(labels), TrainSettings(pretrained_checkpoint=weights[0]))
    assert [c.split(" ")[0] for c in changed.changes(base)] == ["pretrained_weights"]
    monkeypatch.setattr(fingerprint, "TRAINING_CODE_VERSION", 2)
    bumped = training_fingerprint(_frames(labels), TrainSettings(pretrained_checkpoint=weights[0]))
    assert bumped.changes(changed) == ["code (training_code 1 -> 2)"]


def test_images_without_pixel_hashes_and_retrain_with_a_checkpoint_are_refused(tmp_path) -> None:
    with pytest.raises(ImagingError, match="1 train images without pixel_sha256: materialize cxr_images again"):
        training_fingerprint(_frames(["normal"] * 4, pixel_sha256=[None, "a", "b", "c"]), TrainSettings())
    with pytest.raises(ValidationError, match="retrain needs training: drop checkpoint"):
        TrainSettings(checkpoint=tmp_path / "model.pt", retrain=True)
