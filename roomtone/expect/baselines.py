"""Quick baselines: the floor a deep model must beat, measured on the model's own log-mel input.

* chance levels: always predicting the majority class, and guessing uniformly;
* a classical baseline: per-clip summary statistics of the log-mel (band means/stds, MFCC means/stds
  over the whole clip and over its thirds, delta-MFCC spread) into a standardised logistic regression,
  scored on the dataset's own test split (when it has one) and by grouped cross-validation (groups,
  e.g. speakers, never straddle folds);
* per-class precision/recall/F1, the confusion matrix and the most confused pairs.
"""

from __future__ import annotations

import numpy as np

from roomtone.errors import DataError, ParameterError
from roomtone.features.summary import grouped_cv_predict, make_classifier, single_thread

# One name for the classical floor everywhere (CLI, reports, README)
BASELINE = "quick baseline"
BASELINE_METHOD = "summary statistics of the log-mel and its MFCCs + logistic regression"


def chance_levels(y_train: np.ndarray, y_test: np.ndarray, *, n_classes: int) -> dict:
    """Accuracy of always predicting the training majority class, and expected accuracy of uniform guessing."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if y_train.size == 0 or y_test.size == 0:
        raise DataError("chance levels need at least one training and one test example")
    majority = int(np.bincount(y_train, minlength=n_classes).argmax())
    return {"majority_class": majority, "majority": float(np.mean(y_test == majority)), "uniform": 1.0 / n_classes}


def scores(y_true: np.ndarray, y_pred: np.ndarray, *, labels: list[str], top_pairs: int = 5) -> dict:
    """Accuracy, macro F1, per-class P/R/F1/support, confusion matrix (rows true, columns predicted), confused pairs."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(labels)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(range(k)), zero_division=0)
    per_class = [{"label": labels[i], "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(s[i])} for i in range(k)]
    return {
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "macro_f1": float(np.mean(f)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "confused_pairs": confused_pairs(cm, labels=labels, top=top_pairs),
    }


def confused_pairs(cm: np.ndarray, *, labels: list[str], top: int = 5) -> list[dict]:
    """The ``top`` class pairs most often mistaken for each other (both directions), as a share of their examples."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    out = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            n = cm[i, j] + cm[j, i]
            if n > 0:
                share = n / max(1.0, support[i] + support[j])
                out.append({"a": labels[i], "b": labels[j], "errors": int(n), "a_as_b": int(cm[i, j]),
                            "b_as_a": int(cm[j, i]), "share": float(share)})
    out.sort(key=lambda d: (-d["errors"], -d["share"]))
    return out[:top]


def quick_baseline(x: np.ndarray, y: np.ndarray, *, labels: list[str], groups: np.ndarray | None = None,
                   splits: np.ndarray | None = None, n_splits: int = 5, seed: int = 0) -> dict:
    """Chance levels and the classical baseline on summary features ``x`` ``(n, d)`` with labels ``y`` ``(n,)``.

    ``holdout``: trained on the ``train``+``valid`` rows, scored on the ``test`` rows (None when the
    split column has no test or no training rows). ``grouped_cv``: out-of-fold scores over all rows.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ParameterError(f"x of shape {x.shape} and y of shape {y.shape} must be (n, d) and (n,)")
    if len(np.unique(y)) < 2:
        found = [labels[i] if 0 <= i < len(labels) else str(i) for i in sorted(set(y.tolist()))]
        raise DataError(f"the baseline needs at least 2 classes with examples; found only {found}")
    with single_thread():
        return _quick_baseline(x, y, labels=labels, groups=groups, splits=splits, n_splits=n_splits, seed=seed)


def _quick_baseline(x, y, *, labels, groups, splits, n_splits, seed) -> dict:
    groups = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups)
    out: dict = {"n_examples": int(len(y)), "n_features": int(x.shape[1]), "classifier": "standardise + logistic regression"}
    holdout = None
    if splits is not None:
        splits = np.asarray(splits)
        tr, te = np.isin(splits, ["train", "valid"]), splits == "test"
        if tr.any() and te.any() and len(np.unique(y[tr])) >= 2:
            clf = make_classifier(seed=seed).fit(x[tr], y[tr])
            holdout = scores(y[te], clf.predict(x[te]), labels=labels)
            holdout["chance"] = chance_levels(y[tr], y[te], n_classes=len(labels))
            holdout["n_train"], holdout["n_test"] = int(tr.sum()), int(te.sum())
    out["holdout"] = holdout
    pred, k = grouped_cv_predict(x, y, groups, n_splits=n_splits, seed=seed)
    cv = scores(y, pred, labels=labels)
    cv["n_folds"] = k
    cv["n_groups"] = int(len(np.unique(groups)))
    cv["chance"] = chance_levels(y, y, n_classes=len(labels))
    out["grouped_cv"] = cv
    return out
