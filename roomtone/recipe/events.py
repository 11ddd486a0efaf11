"""Pattern length and sparsity: how long the target events last, and how much of a clip they fill.

Per clip, a short-time energy envelope (Hann frames, ``win_s`` long every ``hop_s``) is thresholded
halfway (in dB) between the clip's floor (5th percentile) and its peak, but never more than
``max_depth_db`` below the peak; gaps shorter than ``min_gap_s`` are bridged. A clip whose dynamic
range is under ``min_range_db`` is stationary: one event filling the clip. Per class this gives the
distribution of event durations and the fraction of active frames, hence

* the recommended receptive field: long enough to see a whole typical event (1.2 x the 90th
  percentile of durations, at most the typical clip length);
* the recommended pooling head: ``max`` (or autopool) for short sparse events (active < 30 %),
  ``autopool`` in between, ``mean`` for dense ones (active >= 60 %).
"""

from __future__ import annotations

import numpy as np

from roomtone.errors import ParameterError

SPARSE_BELOW = 0.3
DENSE_FROM = 0.6


def frame_energy_db(wave: np.ndarray, *, sr: int, hop_s: float = 0.005, win_s: float = 0.010) -> np.ndarray:
    """Short-time energy of ``wave`` ``(time,)`` in dB (floored at -120): ``(frames,)``, frame ``i`` starting at ``i * hop``."""
    if hop_s <= 0 or win_s < hop_s:
        raise ParameterError(f"hop_s={hop_s!r}, win_s={win_s!r} must satisfy 0 < hop_s <= win_s")
    hop, win = max(1, round(hop_s * sr)), max(2, round(win_s * sr))
    w = np.asarray(wave, dtype=np.float64)
    if w.size < win:
        w = np.pad(w, (0, win - w.size))
    frames = np.lib.stride_tricks.sliding_window_view(w, win)[::hop]
    window = np.hanning(win + 2)[1:-1]
    e = (frames**2 @ window) / window.sum()
    return 10 * np.log10(np.maximum(e, 1e-12))


def active_mask(energy_db: np.ndarray, *, hop_s: float, min_range_db: float = 10.0, max_depth_db: float = 30.0,
                min_gap_s: float = 0.05) -> np.ndarray:
    """Boolean ``(frames,)``: frames above the clip's halfway threshold, short gaps bridged."""
    e = np.asarray(energy_db, dtype=np.float64)
    if e.size == 0:
        return np.zeros(0, dtype=bool)
    floor, peak = np.percentile(e, 5), e.max()
    if peak - floor < min_range_db:
        return np.ones(e.size, dtype=bool)
    mask = e > max(floor + 0.5 * (peak - floor), peak - max_depth_db)
    gap = int(round(min_gap_s / hop_s))
    if gap > 0:
        idx = np.flatnonzero(mask)
        for a, b in zip(idx[:-1], idx[1:], strict=False):
            if 1 < b - a <= gap + 1:
                mask[a:b] = True
    return mask


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` frame indices of each run of True in ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def clip_events(wave: np.ndarray, *, sr: int, hop_s: float = 0.005, win_s: float = 0.010,
                min_event_s: float = 0.02, **kw) -> dict:
    """Events of one clip: ``{"durations": [s, ...], "active_fraction": float, "clip_s": float}``.

    A run of ``n`` active frames lasts ``n * hop_s - (win_s - hop_s)`` seconds (the window's smear removed),
    at least ``hop_s``. Runs under ``min_event_s`` count only in clips that have no longer run.
    """
    clip_s = len(wave) / sr
    if len(wave) == 0:
        return {"durations": [], "active_fraction": 0.0, "clip_s": 0.0}
    mask = active_mask(frame_energy_db(wave, sr=sr, hop_s=hop_s, win_s=win_s), hop_s=hop_s, **kw)
    if mask.all():
        return {"durations": [clip_s], "active_fraction": 1.0, "clip_s": clip_s}
    durs = [min(clip_s, max(hop_s, (b - a) * hop_s - (win_s - hop_s))) for a, b in runs(mask)]
    # runs shorter than min_event_s are blips beside longer events; a clip of nothing but short runs is
    # impulsive (clicks, knocks): those are its events
    durs = [d for d in durs if d >= min_event_s] or durs
    return {"durations": durs, "active_fraction": float(min(1.0, sum(durs) / clip_s)), "clip_s": clip_s}


def recommend_pooling(active_fraction: float) -> str:
    """``"max"`` for sparse (< 30 % active), ``"autopool"`` in between, ``"mean"`` for dense (>= 60 %)."""
    if active_fraction < SPARSE_BELOW:
        return "max"
    return "mean" if active_fraction >= DENSE_FROM else "autopool"


def model_receptive_field_s(model) -> float | None:
    """A model's receptive field in seconds via ``roomtone.models.receptive_field`` (None when unavailable)."""
    try:
        from roomtone.models import receptive_field
    except ImportError:
        return None
    rf = receptive_field(model)
    for key in ("seconds", "rf_s", "receptive_field_s"):
        if isinstance(rf, dict) and key in rf:
            return float(rf[key])
        if hasattr(rf, key):
            return float(getattr(rf, key))
    return float(rf) if isinstance(rf, (int, float)) else None


def analyse_events(waves: list[np.ndarray], y: np.ndarray, *, labels: list[str], sr: int,
                   model_rf_s: float | None = None, hop_s: float = 0.005, win_s: float = 0.010, **kw) -> dict:
    """Per-class event durations and sparsity, with the recommended receptive field and pooling head.

    Returns ``{"per_class": [{label, n_clips, n_events, durations, median_s, p10_s, p90_s,
    active_fraction, pooling, rf_s}], "recommended_rf_s", "pooling", "model_rf_s", "rf_check"}``.
    ``pooling`` is the head for the whole task: ``max`` if any class is sparse, else per the median.
    """
    y = np.asarray(y)
    per_class = []
    for k, lab in enumerate(labels):
        idx = np.flatnonzero(y == k)
        if idx.size == 0:
            continue
        ev = [clip_events(waves[i], sr=sr, hop_s=hop_s, win_s=win_s, **kw) for i in idx]
        durs = np.array([d for e in ev for d in e["durations"]], dtype=np.float64)
        frac = float(np.median([e["active_fraction"] for e in ev]))
        clip = float(np.median([e["clip_s"] for e in ev]))
        q10, q50, q90 = (float(v) for v in np.percentile(durs, [10, 50, 90])) if durs.size else (0.0, 0.0, 0.0)
        per_class.append({
            "label": lab, "n_clips": int(idx.size), "n_events": int(durs.size), "durations": durs.tolist(),
            "median_s": q50, "p10_s": q10, "p90_s": q90, "active_fraction": frac,
            "clip_s": clip, "pooling": recommend_pooling(frac), "rf_s": float(min(1.2 * q90, clip) if clip else 0.0),
        })
    if not per_class:
        raise ParameterError("analyse_events needs at least one clip with a label")
    pools = [c["pooling"] for c in per_class]
    pooling = "max" if "max" in pools else recommend_pooling(float(np.median([c["active_fraction"] for c in per_class])))
    rf = float(max(c["rf_s"] for c in per_class))
    out = {"per_class": per_class, "recommended_rf_s": rf, "pooling": pooling, "model_rf_s": model_rf_s,
           "rf_check": None}
    if model_rf_s is not None:
        if model_rf_s < rf:
            out["rf_check"] = (f"too short: the model sees {model_rf_s:.2f} s but events last up to {rf:.2f} s; "
                               "add blocks/pooling or dilation")
        else:
            out["rf_check"] = f"ok: the model sees {model_rf_s:.2f} s >= {rf:.2f} s recommended"
    return out
