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
import torch

from roomtone.errors import DataError, ParameterError

# One name for the classical floor everywhere (CLI, reports, README)
BASELINE = "quick baseline"
BASELINE_METHOD = "summary statistics of the log-mel and its MFCCs + logistic regression"

N_MFCC = 13


def logmel_of(waves: list[np.ndarray], *, frontend: torch.nn.Module, batch_size: int = 64) -> list[np.ndarray]:
    """Log-mel (dB) of each waveform ``(time,)``: list of ``(n_mels, frames)`` float32 (empty waves give 0 frames)."""
    n_mels = int(getattr(frontend, "n_mels", 0) or 0)
    out: list[np.ndarray | None] = [None] * len(waves)
    order = sorted(range(len(waves)), key=lambda i: waves[i].size)
    with torch.no_grad():
        # Batches of similar lengths, zero-padded: the valid frames equal those of each clip alone
        # (centred frames see zeros past the end either way; top_db is per example).
        for s in range(0, len(order), batch_size):
            idx = [i for i in order[s:s + batch_size] if waves[i].size]
            for i in order[s:s + batch_size]:
                if not waves[i].size:
                    out[i] = np.zeros((n_mels, 0), dtype=np.float32)
            if not idx:
                continue
            lengths = torch.tensor([waves[i].size for i in idx])
            x = torch.zeros(len(idx), int(lengths.max()))
            for r, i in enumerate(idx):
                x[r, : waves[i].size] = torch.from_numpy(np.asarray(waves[i], dtype=np.float32))
            try:
                spec, frames = frontend(x, lengths=lengths)
            except TypeError:  # a front end without `lengths`: one clip at a time
                for i in idx:
                    out[i] = frontend(torch.from_numpy(np.asarray(waves[i], dtype=np.float32))).numpy()
                continue
            spec = spec.numpy()
            for r, i in enumerate(idx):
                out[i] = np.ascontiguousarray(spec[r, :, : int(frames[r])])
    return out


def summary_features(logmel: np.ndarray) -> np.ndarray:
    """Fixed-size summary of one log-mel ``(n_mels, frames)`` -> ``(2 * n_mels + 6 * 13,)`` float32.

    Band means and stds; MFCC (orthonormal DCT-II of the dB log-mel, first 13) mean and std over the
    clip, MFCC means over its three equal thirds (the temporal order of the pattern), and the std of the
    frame-to-frame MFCC difference. An empty clip gives zeros.
    """
    from scipy.fft import dct

    n_mels = logmel.shape[0]
    size = 2 * n_mels + 6 * N_MFCC
    if logmel.ndim != 2:
        raise ParameterError(f"logmel of shape {tuple(logmel.shape)} must be 2-D (n_mels, frames)")
    if logmel.shape[1] == 0:
        return np.zeros(size, dtype=np.float32)
    mf = dct(logmel, type=2, norm="ortho", axis=0)[:N_MFCC]
    if mf.shape[0] < N_MFCC:
        mf = np.pad(mf, ((0, N_MFCC - mf.shape[0]), (0, 0)))
    thirds = [p.mean(axis=1) if p.shape[1] else mf.mean(axis=1) for p in np.array_split(mf, 3, axis=1)]
    d = np.diff(mf, axis=1).std(axis=1) if mf.shape[1] > 1 else np.zeros(N_MFCC)
    return np.concatenate([logmel.mean(1), logmel.std(1), mf.mean(1), mf.std(1), *thirds, d]).astype(np.float32)


def feature_matrix(logmels: list[np.ndarray]) -> np.ndarray:
    """Stack :func:`summary_features` of each clip: ``(n_clips, n_features)``."""
    return np.stack([summary_features(m) for m in logmels])


def single_thread():
    """Context: BLAS/OpenMP pools at one thread. The baseline's small matrices gain nothing from more, and
    on a busy machine spinning pool threads cost 10-20x the CPU time."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def make_classifier(*, seed: int = 0, c: float = 1.0):
    """The classical baseline: standardise, then multinomial logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500, random_state=seed))


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


def grouped_cv_predict(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, n_splits: int = 5,
                       seed: int = 0) -> tuple[np.ndarray, int]:
    """Out-of-fold predictions by stratified grouped K-fold (a group never straddles train and test).

    Returns ``(y_pred, n_folds)``; with fewer than 2 groups it falls back to stratified K-fold.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n_groups = len(np.unique(groups))
    min_class = int(np.bincount(y).min(initial=0)) if y.size else 0
    if n_groups >= 2:
        k = min(n_splits, n_groups)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = splitter.split(x, y, groups)
    else:
        k = max(2, min(n_splits, min_class))
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y)
    pred = np.full_like(y, -1)
    for tr, te in folds:
        if len(np.unique(y[tr])) < 2:
            pred[te] = y[tr][0]
            continue
        clf = make_classifier(seed=seed).fit(x[tr], y[tr])
        pred[te] = clf.predict(x[te])
    return pred, k


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
