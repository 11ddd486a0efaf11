"""The transfer point: would a pre-trained backbone beat training from scratch? Measured before any training.

For each catalogue backbone whose weights are on this machine (of the user's ``domain`` when one is given),
the frozen backbone embeds the training clips (train + valid rows, at most ``PER_CLASS`` per class drawn
with the seed; their first ``clip`` seconds, at the backbone's own rate), and a standardised logistic regression reads the mean-pooled embeddings. The quick
baseline's log-mel summary (:mod:`roomtone.features.summary`, on the recipe's own front end) is read by the
same classifier. Both are scored on the same grouped cross-validation folds of the training split (a group
never straddles folds; the test split is never looked at). The probe is the transfer point; the baseline is
the from-scratch side's stand-in. :func:`roomtone.recipe.rules.transfer_choice` decides from the two.
"""

from __future__ import annotations

import numpy as np
import torch

from roomtone.prepare.manifest import ManifestRow

CV_FOLDS = 5  # grouped folds of the training split, the same for the probe and the baseline
PER_CLASS = 100  # at most this many training rows per class are embedded (seeded draw): bounds the cost


def candidate_backbones(domain: str | None = None) -> list[str]:
    """Catalogue backbones whose weights are here (those of ``domain`` only, when given)."""
    from roomtone.models.pretrained import CATALOG, weights_present

    return [n for n, e in CATALOG.items() if (domain is None or e.domain == domain) and weights_present(n)]


def decode_clips(rows: list[ManifestRow], *, sr: int, clip_s: float) -> tuple[list[np.ndarray], list[int]]:
    """The first ``clip_s`` seconds of each row at ``sr`` as float32: ``(waves, kept indices)``; unreadable and
    empty rows are left out."""
    from roomtone.recipe.measure import decode_rows

    waves, kept = decode_rows(rows, sr=sr, seconds=clip_s)
    pairs = [(w.astype(np.float32), i) for w, i in zip(waves, kept, strict=True) if w.size]
    return [w for w, _ in pairs], [i for _, i in pairs]


@torch.no_grad()
def embed(model: torch.nn.Module, waves: list[np.ndarray]) -> np.ndarray:
    """Pooled embeddings ``(n, D)``: ``model.forward_head(model.forward_features(x), pre_logits=True)``, one clip
    at a time (no padding enters the pooling)."""
    model.eval()
    return np.stack([model.forward_head(model.forward_features(torch.from_numpy(w)[None]), pre_logits=True)[0]
                     .float().numpy() for w in waves])


def baseline_matrix(waves: list[np.ndarray], *, frontend: dict) -> np.ndarray:
    """The quick baseline's summary features ``(n, d)`` of ``waves`` on the log-mel ``frontend`` settings."""
    from roomtone.features import log_mel
    from roomtone.features.summary import feature_matrix, logmel_of

    fe = log_mel(**{k: v for k, v in frontend.items() if k in ("sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax")})
    return feature_matrix(logmel_of(waves, frontend=fe.eval()))


def cv_accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, seed: int) -> float:
    """Out-of-fold accuracy of the standardised logistic regression (grouped folds, :data:`CV_FOLDS`)."""
    from roomtone.features.summary import grouped_cv_predict, single_thread

    with single_thread():
        pred, _ = grouped_cv_predict(x, y, groups, n_splits=CV_FOLDS, seed=seed)
    return float(np.mean(pred == y))


def transfer_points(rows: list[ManifestRow], *, labels: list[str], frontend: dict, clip_s: float,
                    backbones: list[str], seed: int = 0) -> list[dict]:
    """Probe vs quick baseline on the training rows of ``rows``, one dict per backbone:
    ``{"backbone", "probe_accuracy", "baseline_accuracy", "n", "folds"}`` (accuracies of the same grouped
    folds). ``frontend``: the recipe's log-mel settings (``sr`` included) for the baseline."""
    from roomtone.models import create_model
    from roomtone.recipe.measure import sample_rows

    train = [r for r in rows if (r.split or "train") in ("train", "valid")]
    if not backbones or not train:
        return []
    train = [train[i] for i in sample_rows(train, labels, per_class=PER_CLASS, seed=seed)]
    index = {lab: i for i, lab in enumerate(labels)}
    base_waves, kept = decode_clips(train, sr=int(frontend["sr"]), clip_s=clip_s)
    y = np.array([index[train[i].label] for i in kept], dtype=np.int64)
    groups = np.array([train[i].group or train[i].path for i in kept])
    if len(np.unique(y)) < 2:
        return []
    baseline = cv_accuracy(baseline_matrix(base_waves, frontend=frontend), y, groups, seed=seed)
    out = []
    for name in backbones:
        model = create_model(name, pretrained=True, num_classes=len(labels))
        waves, kept_b = decode_clips([train[i] for i in kept], sr=int(model.sr), clip_s=clip_s)
        if len(kept_b) != len(kept):  # the same clips on both sides, or no comparison
            continue
        probe = cv_accuracy(embed(model, waves), y, groups, seed=seed)
        out.append({"backbone": name, "probe_accuracy": probe, "baseline_accuracy": baseline, "n": int(y.size),
                    "folds": int(min(CV_FOLDS, len(np.unique(groups))))})
    return out
