"""The imaging group's figures: held-out ROC and confusion, and (synthetic images only) Grad-CAM overlays."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from epiatlas.artifacts import FigureSpec
from epiatlas.imaging import CLASSES
from epiatlas.imaging.pipeline import PROBABILITY_COLUMNS, overlay_sample


def evaluation_figure(test: pd.DataFrame, synthetic: bool) -> FigureSpec:
    """ROC curves and confusion matrix of the labelled held-out predictions."""
    from epiatlas.imaging.evaluation import evaluate

    labels = test["label"].map({c: k for k, c in enumerate(CLASSES)}).to_numpy()
    result = evaluate(labels, test[PROBABILITY_COLUMNS].to_numpy(), n_boot=0)
    return FigureSpec("cxr_roc_confusion", "Held-out ROC curves and confusion matrix.", result.figure(synthetic))


def overlay_figures(
    model: object, arch: str, layer: object, test: pd.DataFrame, images: pd.DataFrame, root: Path, size: int,
    per_class: int,
) -> list[FigureSpec]:
    """Grad-CAM overlays of the most confident held-out images per predicted class, and one image's comparison
    of Grad-CAM, LRP, occlusion and bacterial minus viral. For synthetic images only: never a patient's image.
    """
    import torch

    from epiatlas.imaging.attribution_compare import compare_attributions
    from epiatlas.imaging.dataset import CxrDataset
    from epiatlas.imaging.gradcam import gradcam
    from epiatlas.imaging.overlays import overlay_png

    sample = overlay_sample(test, per_class)
    if sample.empty:
        return []
    dataset = CxrDataset(images.set_index("image_id").loc[sample["image_id"]].reset_index(), root, size)
    batch = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    cam = gradcam(model, layer, batch)
    figures = []
    for i, row in enumerate(sample.itertuples()):
        title = f"predicted {row.predicted_class} ({getattr(row, 'p_' + row.predicted_class):.2f}), true {row.label}"
        figures.append(FigureSpec(f"cxr_overlay_{row.predicted_class}_{i}", f"Grad-CAM overlay, image {row.image_id}.",
                                  overlay_png(batch[i], cam.normalised[i].detach().cpu(), title, synthetic=True)))
    figures.append(FigureSpec("cxr_attribution_comparison", "Grad-CAM, LRP, occlusion and bacterial minus viral.",
                              compare_attributions(model, batch[0], arch, layer, synthetic=True)))
    return figures
