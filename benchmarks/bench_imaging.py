"""Benchmark: CXR inference and Grad-CAM throughput (images/s) against plain torch and pytorch-grad-cam.

On the same model (fresh weights: speed does not depend on them) and the same phantom batches, in one run:
plain torch inference on decoded tensors; the pipeline's inference (`predict`); the Grad-CAM step (`gradcam`,
logits kept from its own forward); the pipeline's inference + Grad-CAM + summaries to a table (`explain`);
pytorch-grad-cam's `GradCAM` (fp32, predicted class); and decode -> infer -> Grad-CAM -> summaries -> table
from PNGs on disk. Prints the ratios against the issue's targets. Each figure is the best of --repeats passes
(interleaved: the machine is shared); CUDA with mixed precision and channels-last when available.

    .venv/bin/python benchmarks/bench_imaging.py [--batches 6] [--repeats 3] [--threads 2] [--device auto]
        [--precision auto|fp32|bf16|fp16] [--arch resnet18 --arch epiatlas_cxr_small]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: the machine is shared

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from epiatlas.imaging.attention import explain
from epiatlas.imaging.dataset import CxrDataset
from epiatlas.imaging.gradcam import gradcam, target_layer
from epiatlas.imaging.inference import autocast, autocast_dtype, place_model, predict, to_device
from epiatlas.imaging.models import build_model, resolve_device
from epiatlas.imaging.phantoms import generate_phantoms
from epiatlas.imaging.settings import Precision

CASES = (("resnet18", 224, 16), ("epiatlas_cxr_small", 128, 32))
"""(architecture, image size, batch size) as the issue measures them."""
TARGETS = {"gradcam_vs_plain": 0.85, "gradcam_vs_pytorch_grad_cam": 2.5, "decode_pipeline_vs_plain": 0.60}


class DecodedItems(Dataset):
    """Already-decoded images and lung masks as `CxrDataset` items (the in-memory side of the comparison)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"image": self.images[i], "label": -1, "index": i, "lung_mask": self.masks[i], "has_mask": True}


def best_rates(n_images: int, steps: dict[str, Callable[[], object]], repeats: int,
               sync: Callable[[], None]) -> dict[str, float]:
    """Images per second of each step's fastest of `repeats` runs, the steps interleaved round by round (so
    each meets the same load on a shared machine), after one warm-up run each."""
    best = dict.fromkeys(steps, np.inf)
    for round_ in range(repeats + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            sync()
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: n_images / seconds for name, seconds in best.items()}


def run_case(arch: str, size: int, batch: int, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """All methods on one architecture; images/s per method and the heat-map agreement with pytorch-grad-cam."""
    from pytorch_grad_cam import GradCAM

    n = batch * args.batches
    root = Path(tempfile.mkdtemp(prefix="bench_imaging_"))
    manifest = generate_phantoms(root, n, size, seed=0)
    files = CxrDataset(manifest, root, size, with_masks=True)
    items = [files[i] for i in range(n)]
    decoded = DecodedItems(torch.stack([it["image"] for it in items]), torch.stack([it["lung_mask"] for it in items]))
    batches = [to_device(decoded.images[i : i + batch], device) for i in range(0, n, batch)]
    torch.manual_seed(0)
    model = place_model(build_model(arch).eval(), device)
    layer = target_layer(model, arch)
    precision = args.precision
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def plain() -> None:
        with torch.inference_mode(), autocast(device, precision):
            for x in batches:
                torch.softmax(model(x).float(), dim=1)

    def cams() -> None:
        for x in batches:
            gradcam(model, layer, x, precision=precision)

    reference = GradCAM(model=model, target_layers=[layer])

    def pytorch_grad_cam() -> None:
        for x in batches:
            reference(input_tensor=x, targets=None)

    rates = best_rates(n, {
        "plain torch inference": plain,
        "pipeline inference (predict)": lambda: predict(model, decoded, batch, device, precision=precision),
        "Grad-CAM step (gradcam)": cams,
        "inference + Grad-CAM + summaries (explain)": lambda: explain(model, layer, decoded, batch, device,
                                                                      precision=precision),
        "pytorch-grad-cam GradCAM (fp32)": pytorch_grad_cam,
        "decode + explain from PNG files": lambda: explain(model, layer, files, batch, device, args.workers,
                                                           precision),
    }, args.repeats, sync)  # fmt: skip
    ours = gradcam(model, layer, batches[0], precision="fp32").normalised.cpu().numpy()
    theirs = reference(input_tensor=batches[0], targets=None)
    rates["map correlation with pytorch-grad-cam"] = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    return rates


def report(arch: str, size: int, batch: int, rates: dict[str, float], device: torch.device,
           precision: Precision) -> None:
    """Print one case's figures and its ratios against the targets."""
    dtype = autocast_dtype(device, precision)
    print(f"\n{arch} at {size} px, batch {batch}, {device.type}, {'fp32' if dtype is None else dtype}:")
    for name, value in rates.items():
        unit = "" if name.startswith("map") else " img/s"
        print(f"  {name:<46} {value:9.3f}{unit}")
    plain = rates["plain torch inference"]
    ratios = {
        "gradcam_vs_plain": rates["Grad-CAM step (gradcam)"] / plain,
        "gradcam_vs_pytorch_grad_cam": rates["Grad-CAM step (gradcam)"] / rates["pytorch-grad-cam GradCAM (fp32)"],
        "decode_pipeline_vs_plain": rates["decode + explain from PNG files"] / plain,
        "explain_vs_plain": rates["inference + Grad-CAM + summaries (explain)"] / plain,
    }
    for name, value in ratios.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  target >= {target:.2f}: {'met' if value >= target else 'NOT met'}"
        print(f"  ratio {name:<40} {value:9.2f}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6, help="batches per method and pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per method (the best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for decoding from PNG files")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="autocast of our steps and plain inference (pytorch-grad-cam always runs fp32)")
    parser.add_argument("--arch", choices=[c[0] for c in CASES], action="append",
                        help="only these cases (repeatable; default all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, device {device}, load {os.getloadavg()[0]:.1f}")
    for arch, size, batch in CASES:
        if args.arch is None or arch in args.arch:
            report(arch, size, batch, run_case(arch, size, batch, args, device), device, args.precision)


if __name__ == "__main__":
    main()
