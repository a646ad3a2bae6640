"""Held-out evaluation of the CXR classifier: accuracy, per-class rates, one-vs-rest AUC, calibration, with CIs.

Every metric is computed for the whole set and for each group of each subgrouping column (region, sex, age
band ...), with percentile bootstrap confidence intervals from one seeded generator (images resampled with
replacement within the set or group). Metrics that a resample leaves undefined (a class absent) drop that
resample; a metric undefined on the data itself is NaN with NaN bounds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from epiatlas.errors import ImagingError
from epiatlas.imaging import CLASSES
from epiatlas.models.plots import SYNTHETIC_CAPTION, Size, _figure, _png

K = len(CLASSES)
ECE_BINS = 15
ALL = "all"
METRIC_COLUMNS = ["subgroup", "group", "metric", "class", "estimate", "ci_low", "ci_high", "n"]
_CELLS_PER_CHUNK = 2_000_000  # bootstrap replicates x images evaluated at once (memory bound)


@dataclass(frozen=True)
class EvaluationResult:
    """Tidy evaluation tables: `metrics` (METRIC_COLUMNS), `confusion` (subgroup, group, true, predicted, n),
    `roc` (class, fpr, tpr on the whole set)."""

    metrics: pd.DataFrame
    confusion: pd.DataFrame
    roc: pd.DataFrame

    def estimate(self, metric: str, cls: str = ALL, subgroup: str = ALL, group: str = ALL) -> float:
        """One point estimate, e.g. `estimate("auc", "viral")` or `estimate("macro_auc")`."""
        m = self.metrics
        row = m[(m["metric"] == metric) & (m["class"] == cls) & (m["subgroup"] == subgroup) & (m["group"] == group)]
        if len(row) != 1:
            raise ImagingError(f"no {metric} for class {cls} in {subgroup}={group}")
        return float(row["estimate"].iloc[0])

    def figure(self, synthetic: bool = False, size: Size = "full") -> bytes:
        """PNG: one-vs-rest ROC curves with AUCs, and the whole set's confusion matrix (row shares shaded)."""
        fig, (roc_ax, cm_ax) = _figure(11.0, 4.8, size, columns=2)
        for cls in CLASSES:
            curve = self.roc[self.roc["class"] == cls]
            roc_ax.plot(curve["fpr"], curve["tpr"], label=f"{cls} (AUC {self.estimate('auc', cls):.3f})")
        roc_ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        roc_ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01),
                   title=f"One-vs-rest ROC (macro AUC {self.estimate('macro_auc'):.3f})")  # fmt: skip
        roc_ax.legend(loc="lower right", fontsize=8)
        whole = self.confusion[(self.confusion["subgroup"] == ALL)]
        counts = whole.pivot(index="true", columns="predicted", values="n").reindex(index=CLASSES, columns=CLASSES)
        shares = counts.to_numpy(float) / np.maximum(counts.to_numpy(float).sum(axis=1, keepdims=True), 1.0)
        cm_ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), n in np.ndenumerate(counts.to_numpy()):
            cm_ax.text(j, i, str(n), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
        cm_ax.set_xticks(range(K), CLASSES, rotation=30)
        cm_ax.set_yticks(range(K), CLASSES)
        cm_ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
        if synthetic:
            fig.text(0.99, -0.02, SYNTHETIC_CAPTION, ha="right", va="top", color="firebrick", weight="bold")
        return _png(fig)


def evaluate(
    labels: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    groups: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> EvaluationResult:
    """Evaluate class probabilities against true labels, overall and per group of each column of `groups`.

    Parameters
    ----------
    labels : true class index per image (0..3, following `CLASSES`); unlabelled images (-1) are an error.
    probs : [N, 4] class probabilities per image (rows sum to 1); the prediction is the arg-max.
    groups : optional frame with one row per image (same order); each column is a subgrouping.
    n_boot : bootstrap resamples for the percentile confidence intervals (0: no intervals).
    seed : seed of the bootstrap generator.
    level : confidence level of the intervals.

    References
    ----------
    Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap, ch. 13 (percentile intervals).
    Guo C et al. (2017). On calibration of modern neural networks. ICML (expected calibration error).
    """
    y, p = _validated(labels, probs)
    if groups is not None and len(groups) != len(y):
        raise ImagingError(f"groups has {len(groups)} rows but there are {len(y)} labels: give one row per image")
    rng = np.random.default_rng(seed)
    parts = [(ALL, ALL, np.arange(len(y)))]
    for column in [] if groups is None else groups.columns:
        values = groups[column].astype("string").fillna("missing").to_numpy()
        parts += [(str(column), str(g), np.flatnonzero(values == g)) for g in sorted(set(values))]
    metrics, confusion = [], []
    for subgroup, group, rows in parts:
        metrics.append(_group_metrics(y[rows], p[rows], n_boot, rng, level).assign(subgroup=subgroup, group=group))
        confusion.append(_confusion(y[rows], p[rows].argmax(axis=1)).assign(subgroup=subgroup, group=group))
    return EvaluationResult(
        metrics=pd.concat(metrics, ignore_index=True)[METRIC_COLUMNS],
        confusion=pd.concat(confusion, ignore_index=True)[["subgroup", "group", "true", "predicted", "n"]],
        roc=_roc_curves(y, p),
    )


def one_vs_rest_auc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUC of `scores` for `positive` along the last axis (Mann-Whitney with mid-ranks); NaN with one class only.

    Parameters
    ----------
    scores : [..., N] scores; ties count one half.
    positive : [..., N] bool, True for the positive class.
    """
    ranks = rankdata(scores, axis=-1)
    n1 = positive.sum(axis=-1).astype(float)
    n0 = positive.shape[-1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * positive).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean one-vs-rest AUC over the classes present among `labels` (NaN when fewer than two are)."""
    aucs = [one_vs_rest_auc(probs[:, c], labels == c) for c in range(K)]
    defined = [float(a) for a in aucs if np.isfinite(a)]
    return float(np.mean(defined)) if len(defined) >= 2 else float("nan")


def _validated(labels: Sequence[int] | np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != K or p.shape[0] != y.shape[0] or y.ndim != 1:
        raise ImagingError(f"probs must be [N, {K}] (one column per class of {CLASSES}) for N labels; "
                           f"got probs {p.shape} and labels {y.shape}")  # fmt: skip
    if y.size == 0:
        raise ImagingError("no labelled images to evaluate: the held-out set is empty")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= K:
        raise ImagingError(f"labels must be class indices 0..{K - 1}; got values {sorted(set(y.tolist()))[:8]}: "
                           f"drop unlabelled images (-1) before evaluating")  # fmt: skip
    if not np.isfinite(p).all() or p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ImagingError("probs must be finite, non-negative and sum to 1 per row (softmax outputs)")
    return y.astype(np.int64), p


def _group_metrics(y: np.ndarray, p: np.ndarray, n_boot: int, rng: np.random.Generator, level: float) -> pd.DataFrame:
    """Point estimates and bootstrap bounds of every metric on one set of images."""
    n = len(y)
    keys, point = _metric_values(y[None, :], p[None, :, :])
    estimate = point[0]
    lows = np.full(len(keys), np.nan)
    highs = np.full(len(keys), np.nan)
    if n_boot > 0 and n > 1:
        chunk = max(1, _CELLS_PER_CHUNK // n)
        replicates = []
        for start in range(0, n_boot, chunk):
            idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
            replicates.append(_metric_values(y[idx], p[idx])[1])
        values = np.concatenate(replicates, axis=0)
        finite = np.isfinite(estimate) & np.isfinite(values).any(axis=0)
        alpha = (1.0 - level) / 2.0
        lows[finite], highs[finite] = np.nanquantile(values[:, finite], [alpha, 1.0 - alpha], axis=0)
    return pd.DataFrame({"metric": [k[0] for k in keys], "class": [k[1] for k in keys], "estimate": estimate,
                         "ci_low": lows, "ci_high": highs, "n": np.int64(n)})  # fmt: skip


def _metric_values(y: np.ndarray, p: np.ndarray) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(metric, class) keys and their values [B, metrics] for B label sets y [B, N] and probabilities [B, N, K]."""
    predicted = p.argmax(axis=-1)
    correct = predicted == y
    rows: list[tuple[str, str, np.ndarray]] = [("accuracy", ALL, correct.mean(axis=-1))]
    aucs = []
    for c, name in enumerate(CLASSES):
        true_c, pred_c = y == c, predicted == c
        tp = (true_c & pred_c).sum(axis=-1)
        aucs.append(one_vs_rest_auc(p[..., c], true_c))
        rows += [
            ("sensitivity", name, _ratio(tp, true_c.sum(axis=-1))),
            ("specificity", name, _ratio((~true_c & ~pred_c).sum(axis=-1), (~true_c).sum(axis=-1))),
            ("ppv", name, _ratio(tp, pred_c.sum(axis=-1))),
            ("auc", name, aucs[-1]),
        ]
    per_class = np.stack(aucs, axis=-1)
    defined = np.isfinite(per_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no defined AUC: NaN, as intended
        macro = np.where(defined.sum(axis=-1) >= 2, np.nanmean(per_class, axis=-1), np.nan)
    rows += [("macro_auc", ALL, macro), ("ece", ALL, _ece(p.max(axis=-1), correct))]
    return [(r[0], r[1]) for r in rows], np.stack([np.asarray(r[2], dtype=float) for r in rows], axis=1)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _ece(confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Expected calibration error over ECE_BINS equal-width confidence bins (lo, hi], per row of [B, N]."""
    b, n = confidence.shape
    bins = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, 0, ECE_BINS - 1)
    flat = (np.arange(b)[:, None] * ECE_BINS + bins).ravel()
    gap = np.bincount(flat, weights=(correct - confidence).ravel(), minlength=b * ECE_BINS).reshape(b, ECE_BINS)
    return np.abs(gap).sum(axis=1) / n


def _confusion(y: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    counts = np.bincount(y * K + predicted, minlength=K * K)
    true, pred = np.divmod(np.arange(K * K), K)
    return pd.DataFrame({"true": np.asarray(CLASSES)[true], "predicted": np.asarray(CLASSES)[pred],
                         "n": counts.astype(np.int64)})  # fmt: skip


def _roc_curves(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    from sklearn.metrics import roc_curve

    frames = []
    for c, name in enumerate(CLASSES):
        if 0 < (y == c).sum() < len(y):
            fpr, tpr, _ = roc_curve(y == c, p[:, c])
            frames.append(pd.DataFrame({"class": name, "fpr": fpr, "tpr": tpr}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["class", "fpr", "tpr"])
