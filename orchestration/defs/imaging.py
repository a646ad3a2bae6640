"""Imaging group: validated CXR images, the classifier, predictions with Grad-CAM, evaluation, region summary.

Thin assets over `epiatlas.imaging`; torch, timm and captum load inside the library calls. The classifier asset
asks for a GPU through its tags (an executor on a cluster can map `compute: gpu` to a GPU node) and records the
device it ran on. A refresh reuses the stored classifier when its training fingerprint (`epiatlas.imaging.fingerprint`)
is unchanged, and otherwise says in the metadata why it trained.
"""

import dagster as dg
import pandas as pd

from epiatlas.artifacts import ArtifactStore, figure_table
from epiatlas.analyses import AnalysisPlan
from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import load_contract
from epiatlas.contracts.conform import write_conformed
from epiatlas.imaging.fingerprint import (
    Fingerprint,
    TrainingRecord,
    model_row,
    new_record,
    reuse_decision,
    save_record,
    training_fingerprint,
    training_frames,
)
from epiatlas.imaging.pipeline import (
    PROBABILITY_COLUMNS,
    QUARANTINE_SOURCE,
    evaluation_groups,
    prepare_images,
    region_summary,
    suppress_small_groups,
)
from epiatlas.warehouse import Warehouse
from orchestration.defs.contract_checks import contract_check_specs
from orchestration.metadata import png_preview
from orchestration.resources import EpiatlasResource

GROUP = "imaging"
CHECKPOINT = "cxr_classifier"




def _asset(name: str, deps: list[str], **kwargs) -> dict:
    contract = load_contract(name)
    return {
        "name": name,
        "group_name": GROUP,
        "deps": deps,
        "description": contract.description,
        "kinds": {"pytorch", "parquet"},
        "tags": {"privacy": contract.privacy},
        "check_specs": contract_check_specs(contract),
        **kwargs,
    }


@dg.asset(**_asset("cxr_images", ["cxr_manifest", "regions"]))
def cxr_images(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Images that decode under the image root, duplicates found, split by patient and duplicate cluster."""
    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_manifest"]) as con:
        manifest = con.table("cxr_manifest").df()
    prepared = prepare_images(manifest, cfg.imaging, cfg.sources.cxr_manifest.path.name)
    write_conformed(warehouse, load_contract("quarantine"), prepared.quarantine, partition=("source", QUARANTINE_SOURCE))
    context.log.info(f"images: {prepared.counts}")
    return epiatlas.store("cxr_images", prepared.images, prepared.counts)


@dg.asset(**_asset("cxr_model", ["cxr_images"], op_tags={"compute": "gpu"}))
def cxr_model(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Train the classifier on the train split unless the stored checkpoint's training fingerprint matches (then
    reuse it), or load imaging.train.checkpoint; the checkpoint is a private artifact."""
    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_images"]) as con:
        frames = training_frames(con.table("cxr_images").df())
    store = ArtifactStore(warehouse.root / "artifacts")
    row, provenance = (_own_checkpoint(context, cfg, frames, store) if cfg.imaging.train.checkpoint is not None
                       else _trained_or_reused(context, cfg, frames, store))  # fmt: skip
    return epiatlas.store("cxr_model", pd.DataFrame([row]), {
        "model_version": row["model_version"], "device": row["device"], "val_macro_auc": row["val_macro_auc"],
        **provenance})  # fmt: skip


def _datasets(cfg: EpiatlasConfig, frames: dict[str, pd.DataFrame]) -> dict[str, object]:
    """The train and val CxrDatasets at the training image size."""
    from epiatlas.imaging.dataset import CxrDataset

    return {s: CxrDataset(f, cfg.imaging.image_root, cfg.imaging.train.image_size) for s, f in frames.items()}


def _trained_or_reused(
    context: dg.AssetExecutionContext, cfg: EpiatlasConfig, frames: dict[str, pd.DataFrame], store: ArtifactStore
) -> tuple[dict, dict]:
    """The cxr_model row and provenance metadata: the stored checkpoint when its fingerprint matches, else trained."""
    settings = cfg.imaging.train
    fingerprint = training_fingerprint(frames, settings)
    decision = reuse_decision(store, CHECKPOINT, fingerprint, settings.retrain)
    record = decision.record
    if record is not None:
        context.log.info(f"reusing checkpoint {record.model['model_version']} (fingerprint {fingerprint.digest}), "
                         f"trained {record.trained_at} by run {record.run_id}: inputs unchanged")  # fmt: skip
        train_seconds = 0.0
    else:
        context.log.info(f"training {settings.arch} (fingerprint {fingerprint.digest}): {decision.reason}")
        record = _train(context, cfg, frames, store, fingerprint)
        train_seconds = record.train_seconds
    return record.model, {
        "reused": decision.reuse, "reason": decision.reason, "fingerprint": fingerprint.digest,
        "fingerprint_components": dg.MetadataValue.json(fingerprint.hashes),
        "trained_at": record.trained_at, "trained_by_run": record.run_id, "train_seconds": train_seconds,
        "history": dg.MetadataValue.json(record.history),
    }  # fmt: skip


def _train(
    context: dg.AssetExecutionContext, cfg: EpiatlasConfig, frames: dict[str, pd.DataFrame], store: ArtifactStore,
    fingerprint: Fingerprint,
) -> TrainingRecord:
    """Train, store the checkpoint and its training record; the record."""
    from epiatlas.imaging.training import epoch_line, save_checkpoint, train_classifier

    settings = cfg.imaging.train
    split = _datasets(cfg, frames)
    trained = train_classifier(split["train"], split["val"], settings,
                               on_epoch=lambda row: context.log.info(epoch_line(row, settings.epochs)))  # fmt: skip
    artifact = store.put(CHECKPOINT, save_checkpoint(trained), kind="model", privacy="private", suffix="pt")
    row = model_row(trained, artifact.sha256, len(split["train"]), len(split["val"]))
    record = new_record(artifact.sha256, fingerprint, row, trained.history, trained.train_seconds, context.run.run_id)
    save_record(store, CHECKPOINT, record)
    return record


def _own_checkpoint(
    context: dg.AssetExecutionContext, cfg: EpiatlasConfig, frames: dict[str, pd.DataFrame], store: ArtifactStore
) -> tuple[dict, dict]:
    """The cxr_model row and metadata of imaging.train.checkpoint (bring your own), scored on the val split."""
    from epiatlas.imaging.training import load_classifier, save_checkpoint

    split = _datasets(cfg, frames)
    loaded = load_classifier(split["val"], cfg.imaging.train)
    artifact = store.put(CHECKPOINT, save_checkpoint(loaded), kind="model", privacy="private", suffix="pt")
    context.log.info(f"loaded checkpoint {cfg.imaging.train.checkpoint} as model {artifact.sha256[:12]}")
    return model_row(loaded, artifact.sha256, len(split["train"]), len(split["val"])), {
        "reused": False, "reason": "imaging.train.checkpoint is set: loaded, not trained", "train_seconds": 0.0,
    }


def _load_model(cfg: EpiatlasConfig, warehouse: Warehouse) -> tuple[object, str]:
    """The stored classifier and its version."""
    from epiatlas.imaging.models import build_model

    path = ArtifactStore(warehouse.root / "artifacts").current(CHECKPOINT, "pt")
    return build_model(cfg.imaging.train.arch, checkpoint=path), path.stem[:12]


@dg.asset(**_asset("cxr_predictions", ["cxr_images", "cxr_model"], op_tags={"compute": "gpu"}))
def cxr_predictions(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Predicted class, probabilities and Grad-CAM attention summaries of every image, streamed in batches."""
    from epiatlas.imaging.attention import explain
    from epiatlas.imaging.dataset import CxrDataset
    from epiatlas.imaging.gradcam import target_layer

    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_images"]) as con:
        images = con.table("cxr_images").df()
    model, version = _load_model(cfg, warehouse)
    layer = target_layer(model, cfg.imaging.train.arch, cfg.imaging.gradcam_layer)
    dataset = CxrDataset(images, cfg.imaging.image_root, cfg.imaging.train.image_size, with_masks=True)
    explained = explain(model, layer, dataset, cfg.imaging.batch_size, num_workers=cfg.imaging.num_workers)
    frame = images[["image_id", "region_id", "period", "split", "label"]].join(
        explained.set_index("index").sort_index()
    ).assign(model_version=version)
    return epiatlas.store("cxr_predictions", frame, {
        "model_version": version,
        "lung_mask_source": dg.MetadataValue.json(explained["lung_mask_source"].value_counts().to_dict())})


@dg.asset(**_asset("cxr_evaluation", ["cxr_predictions"]))
def cxr_evaluation(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Held-out metrics with bootstrap CIs, overall and per subgroup, and where the model looked."""
    from epiatlas.imaging import CLASSES
    from epiatlas.imaging.attention import shortcut_warning
    from epiatlas.imaging.evaluation import evaluate

    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_predictions", "cxr_images"]) as con:
        test = con.execute(
            "SELECT p.*, i.sex, i.age FROM cxr_predictions p JOIN cxr_images i USING (image_id) "
            "WHERE p.split = 'test' AND p.label IS NOT NULL ORDER BY image_id"
        ).df()
        every = con.table("cxr_predictions").df()
    labels = test["label"].map({c: k for k, c in enumerate(CLASSES)}).to_numpy()
    result = evaluate(labels, test[PROBABILITY_COLUMNS].to_numpy(), evaluation_groups(test))
    verdict = shortcut_warning(every, threshold=cfg.imaging.shortcut_border_share)
    attention = pd.DataFrame([
        {"subgroup": "all", "group": "all", "metric": metric, "class": "all", "estimate": value, "ci_low": None,
         "ci_high": None, "n": len(every)}
        for metric, value in (("lung_share", every["lung_share"].mean()), ("border_share", every["border_share"].mean()),
                              ("shortcut_warning", float(verdict.flagged)))
    ])  # fmt: skip
    metrics = suppress_small_groups(pd.concat([result.metrics, attention], ignore_index=True),
                                    cfg.outcomes.suppression_threshold)  # fmt: skip
    figure = result.figure(synthetic=cfg.synthetic, size="preview")
    return epiatlas.store("cxr_evaluation", metrics, {
        "macro_auc": result.estimate("macro_auc"),
        "accuracy": result.estimate("accuracy"),
        "shortcut": verdict.reason,
        "roc_and_confusion": png_preview(figure, "roc"),
    })


@dg.asset(**_asset("cxr_region_summary", ["cxr_predictions", "regions"]))
def cxr_region_summary(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Per region and year: class shares and attention, small cells suppressed."""
    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_predictions"]) as con:
        predictions = con.execute("SELECT * FROM cxr_predictions WHERE region_id IS NOT NULL AND period IS NOT NULL").df()
    summary = region_summary(predictions, cfg.outcomes.suppression_threshold, cfg.imaging.shortcut_border_share)
    return epiatlas.store("cxr_region_summary", summary, {"suppressed_rows": int(summary["suppressed"].sum())})


@dg.asset(**_asset("cxr_figures", ["cxr_predictions", "cxr_evaluation", "cxr_images"]))
def cxr_figures(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Evaluation figure; for synthetic data also Grad-CAM overlays per class and the attribution comparison."""
    from epiatlas.imaging.figures import evaluation_figure, overlay_figures
    from epiatlas.imaging.gradcam import target_layer

    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_predictions", "cxr_images"]) as con:
        test = con.execute("SELECT * FROM cxr_predictions WHERE split = 'test' AND label IS NOT NULL "
                           "ORDER BY image_id").df()  # fmt: skip
        images = con.table("cxr_images").df()
    figures = [evaluation_figure(test, cfg.synthetic)]
    if cfg.synthetic:  # never publish real patients' images
        model, arch = _load_model(cfg, warehouse)[0], cfg.imaging.train.arch
        layer = target_layer(model, arch, cfg.imaging.gradcam_layer)
        figures += overlay_figures(model, arch, layer, test, images, cfg.imaging.image_root,
                                   cfg.imaging.train.image_size, cfg.imaging.overlays_per_class)  # fmt: skip
    frame = figure_table(ArtifactStore(warehouse.root / "artifacts"), figures)
    return epiatlas.store("cxr_figures", frame, {f"figure_{f.name}": png_preview(f.png, f.name) for f in figures[:4]})


def build_defs(cfg: EpiatlasConfig, plan: AnalysisPlan) -> dg.Definitions:
    """The imaging group when the config has an `imaging:` section that is not switched off."""
    if not plan.imaging.on:
        return dg.Definitions()
    return dg.Definitions(
        assets=[cxr_images, cxr_model, cxr_predictions, cxr_evaluation, cxr_region_summary, cxr_figures]
    )
