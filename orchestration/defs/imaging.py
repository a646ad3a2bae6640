"""Imaging group: validated CXR images, the classifier, predictions with Grad-CAM, evaluation, region summary.

Thin assets over `epiatlas.imaging`; torch, timm and captum load inside the library calls. The classifier asset
asks for a GPU through its tags (an executor on a cluster can map `compute: gpu` to a GPU node) and records the
device it ran on.
"""

import dagster as dg
import pandas as pd

from epiatlas.artifacts import ArtifactStore, figure_table
from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import load_contract
from epiatlas.contracts.conform import write_conformed
from epiatlas.imaging.pipeline import (
    PROBABILITY_COLUMNS,
    QUARANTINE_SOURCE,
    evaluation_groups,
    prepare_images,
    region_summary,
    suppress_small_groups,
)
from epiatlas.warehouse import Warehouse
from orchestration.defs.contract_checks import contract_check_results, contract_check_specs
from orchestration.metadata import png_preview, table_metadata
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
    contract = load_contract("cxr_images")
    written = write_conformed(warehouse, contract, prepared.images)
    write_conformed(warehouse, load_contract("quarantine"), prepared.quarantine, partition=("source", QUARANTINE_SOURCE))
    context.log.info(f"images: {prepared.counts}")
    return dg.MaterializeResult(
        metadata={**table_metadata(contract, written), **prepared.counts},
        check_results=contract_check_results(warehouse, contract),
    )


@dg.asset(**_asset("cxr_model", ["cxr_images"], op_tags={"compute": "gpu"}))
def cxr_model(context: dg.AssetExecutionContext, epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Train the classifier on the train split (or load imaging.train.checkpoint); store it as a private artifact."""
    from epiatlas.imaging.dataset import CxrDataset
    from epiatlas.imaging.training import save_checkpoint, train_classifier

    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    settings = cfg.imaging.train
    with warehouse.connect(["cxr_images"]) as con:
        images = con.table("cxr_images").df()
    split = {s: CxrDataset(images[images["split"] == s].reset_index(drop=True), cfg.imaging.image_root,
                           settings.image_size) for s in ("train", "val")}  # fmt: skip

    def progress(row: dict) -> None:
        context.log.info(f"epoch {row['epoch']}: val macro AUC {row['val_macro_auc']:.3f}")

    trained = train_classifier(split["train"], split["val"], settings, on_epoch=progress)
    artifact = ArtifactStore(warehouse.root / "artifacts").put(
        CHECKPOINT, save_checkpoint(trained), kind="model", privacy="private", suffix="pt"
    )
    record = pd.DataFrame([{
        "model_version": artifact.sha256[:12], "arch": trained.arch, "device": trained.device,
        "image_size": settings.image_size, "trained": settings.checkpoint is None,
        "epochs_run": len(trained.history), "best_epoch": trained.best_epoch if len(trained.history) else None,
        "val_macro_auc": trained.val_macro_auc,
        "n_train": len(split["train"]), "n_val": len(split["val"]),
    }])  # fmt: skip
    contract = load_contract("cxr_model")
    written = write_conformed(warehouse, contract, record)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(contract, written),
            "model_version": artifact.sha256[:12],
            "device": trained.device,
            "val_macro_auc": trained.val_macro_auc,
            "train_seconds": round(trained.train_seconds, 1),
            "history": dg.MetadataValue.json(trained.history.to_dict("records")),
        },
        check_results=contract_check_results(warehouse, contract),
    )


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
    contract = load_contract("cxr_predictions")
    written = write_conformed(warehouse, contract, frame)
    return dg.MaterializeResult(
        metadata={**table_metadata(contract, written), "model_version": version,
                  "lung_mask_source": dg.MetadataValue.json(explained["lung_mask_source"].value_counts().to_dict())},
        check_results=contract_check_results(warehouse, contract),
    )  # fmt: skip


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
    contract = load_contract("cxr_evaluation")
    written = write_conformed(warehouse, contract, metrics)
    figure = result.figure(synthetic=cfg.synthetic, size="preview")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(contract, written),
            "macro_auc": result.estimate("macro_auc"),
            "accuracy": result.estimate("accuracy"),
            "shortcut": verdict.reason,
            "roc_and_confusion": png_preview(figure, "roc"),
        },
        check_results=contract_check_results(warehouse, contract),
    )


@dg.asset(**_asset("cxr_region_summary", ["cxr_predictions", "regions"]))
def cxr_region_summary(epiatlas: EpiatlasResource) -> dg.MaterializeResult:
    """Per region and year: class shares and attention, small cells suppressed."""
    cfg = epiatlas.settings()
    warehouse = epiatlas.warehouse()
    with warehouse.connect(["cxr_predictions"]) as con:
        predictions = con.execute("SELECT * FROM cxr_predictions WHERE region_id IS NOT NULL AND period IS NOT NULL").df()
    summary = region_summary(predictions, cfg.outcomes.suppression_threshold, cfg.imaging.shortcut_border_share)
    contract = load_contract("cxr_region_summary")
    written = write_conformed(warehouse, contract, summary)
    return dg.MaterializeResult(
        metadata={**table_metadata(contract, written), "suppressed_rows": int(summary["suppressed"].sum())},
        check_results=contract_check_results(warehouse, contract),
    )


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
    contract = load_contract("cxr_figures")
    written = write_conformed(warehouse, contract, frame)
    return dg.MaterializeResult(
        metadata={**table_metadata(contract, written),
                  **{f"figure_{f.name}": png_preview(f.png, f.name) for f in figures[:4]}},
        check_results=contract_check_results(warehouse, contract),
    )  # fmt: skip


def build_defs(cfg: EpiatlasConfig) -> dg.Definitions:
    """The imaging group when the config has an `imaging:` section."""
    if cfg.imaging is None:
        return dg.Definitions()
    return dg.Definitions(
        assets=[cxr_images, cxr_model, cxr_predictions, cxr_evaluation, cxr_region_summary, cxr_figures]
    )
