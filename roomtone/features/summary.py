"""Clip summaries a linear classifier can read: log-mel statistics, and the standardised logistic regression.

These are the quick baseline's parts (:mod:`roomtone.expect.baselines`), kept below the recipe so that the
recipe can compare a pre-trained backbone's embeddings with the baseline's features on the same footing
(:mod:`roomtone.recipe.transfer`).
"""

from __future__ import annotations

import numpy as np
import torch

from roomtone.errors import ParameterError

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
