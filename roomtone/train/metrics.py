"""Classification metrics from predicted and true class indices (functional, numpy)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, *, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int counts; row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_metrics(y_true, y_pred, *, labels: list[str]) -> dict:
    """``{"accuracy", "macro_f1", "per_class": {label: {precision, recall, f1, support}},
    "confusion_matrix": [[...]], "labels": [...], "n": int}`` (precision/recall 0 when undefined,
    like scikit-learn's ``zero_division=0``; macro-F1 averages over every label)."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, num_classes=len(labels)), labels=labels)


def metrics_from_confusion(cm: np.ndarray, *, labels: list[str]) -> dict:
    """:func:`classification_metrics` from a confusion matrix (e.g. one summed over DDP ranks)."""
    k = len(labels)
    cm = np.asarray(cm, dtype=np.int64).reshape(k, k)
    tp = np.diag(cm).astype(float)
    pred_pos = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, pred_pos, out=np.zeros(k), where=pred_pos > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if k else 0.0,
        "per_class": {lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "n": n,
    }


def plot_confusion(cm, labels: list[str], path, *, title: str = "confusion matrix") -> None:
    """Write the confusion matrix as a PNG (rows true, columns predicted; cells show counts), atomically."""
    import matplotlib

    from roomtone.files import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 8 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    hi = cm.max() if cm.size else 0
    if len(labels) <= 30:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > hi / 2 else "black")
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)


def combine_windows(log_probs, index, *, n: int):
    """One decision per recording from its windows: the mean of the windows' log-probabilities.

    ``log_probs``: ``(windows, classes)`` tensor; ``index``: ``(windows,)`` recording index of each window in
    ``[0, n)``. Returns ``(n, classes)`` mean log-probabilities (a product of experts: a window that is sure
    outweighs several unsure ones). Used by ``evaluate`` (recording accuracy) and ``predict`` (file scores).
    """
    import torch

    log_probs = torch.as_tensor(log_probs).float()
    index = torch.as_tensor(index).long()
    total = torch.zeros(n, log_probs.shape[1]).index_add_(0, index, log_probs)
    return total / torch.bincount(index, minlength=n).clamp(min=1).unsqueeze(1)
