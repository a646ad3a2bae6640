"""Benchmark: train the CXR classifier on synthetic phantoms; seconds per epoch, held-out macro AUC, inference rate.

Generates `--train + --val + --test` phantoms (say so wherever shown: SYNTHETIC), trains `--arch` with the
given precision, then evaluates on the held-out images. Prints the generation time, per-epoch history, time
per epoch, validation and test macro AUC (bootstrap 95% CI) and streaming inference images/s.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_imaging_train.py [--train 2400] [--size 128]
        [--epochs 8] [--precision fp32|bf16] [--arch epiatlas_cxr_small] [--seed 0] [--workers 0]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: the machine is shared

import argparse
import tempfile
import time
from pathlib import Path

from epiatlas.imaging.dataset import CxrDataset
from epiatlas.imaging.evaluation import evaluate
from epiatlas.imaging.inference import PROBABILITY_COLUMNS, predict
from epiatlas.imaging.phantoms import generate_phantoms
from epiatlas.imaging.settings import TrainSettings
from epiatlas.imaging.training import train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2400)
    parser.add_argument("--val", type=int, default=400)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32")
    parser.add_argument("--arch", default="epiatlas_cxr_small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        manifest = generate_phantoms(root, args.train + args.val + args.test, args.size, seed=args.seed)
        print(f"SYNTHETIC phantoms: {len(manifest)} at {args.size} px in {time.perf_counter() - started:.1f} s",
              flush=True)
        train = manifest.iloc[: args.train].reset_index(drop=True)
        val = manifest.iloc[args.train : args.train + args.val].reset_index(drop=True)
        test = manifest.iloc[args.train + args.val :].reset_index(drop=True)
        settings = TrainSettings(arch=args.arch, image_size=args.size, epochs=args.epochs, batch_size=args.batch,
                                 lr=args.lr, precision=args.precision, seed=args.seed, num_workers=args.workers,
                                 threads=args.threads, patience=args.epochs)  # fmt: skip
        trained = train_classifier(CxrDataset(train, root, args.size), CxrDataset(val, root, args.size), settings,
                                   on_epoch=lambda row: print({k: round(v, 4) for k, v in row.items()}, flush=True))
        epochs = len(trained.history)
        print(f"{args.arch} {args.precision} on {trained.device}: {trained.train_seconds:.1f} s for {epochs} epochs "
              f"({trained.train_seconds / epochs:.2f} s/epoch incl. validation), best epoch {trained.best_epoch}, "
              f"validation macro AUC {trained.val_macro_auc:.4f}, model_version {trained.model_version}")  # fmt: skip

        test_set = CxrDataset(test, root, args.size)
        started = time.perf_counter()
        predictions = predict(trained.model, test_set, batch_size=64, num_workers=args.workers, device="cpu")
        rate = len(test_set) / (time.perf_counter() - started)
        result = evaluate(test_set.labels, predictions[PROBABILITY_COLUMNS].to_numpy(), n_boot=1000, seed=0)
        row = result.metrics.set_index(["subgroup", "metric", "class"]).loc[("all", "macro_auc", "all")]
        print(f"held-out macro AUC {row['estimate']:.4f} (95% CI {row['ci_low']:.4f}-{row['ci_high']:.4f}), "
              f"accuracy {result.estimate('accuracy'):.3f}, ECE {result.estimate('ece'):.3f}; "
              f"streaming inference (decode + forward) {rate:.0f} images/s")  # fmt: skip


if __name__ == "__main__":
    main()
