"""What the recipe measures on a prepared dataset: durations, the band where each class's energy lies,
event lengths and sparsity, class balance and size. Plain functions on rows and arrays (no training).

The band is measured, not read from the file header: per class, the long-term power spectrum of the
active frames (within ``ACTIVE_DB`` of each clip's loudest frame) is accumulated, and ``f_high`` is the
frequency below which ``ENERGY_FRACTION`` of that class's energy lies (``f_low`` the one above which it
lies). The dataset's band is the widest over classes, so no class loses its band.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from roomtone.errors import DataError, ParameterError, RoomtoneError
from roomtone.prepare.manifest import ManifestRow

ENERGY_FRACTION = 0.995   # share of a class's active-frame energy inside [f_low, f_high]
ACTIVE_DB = 30.0          # frames within this many dB of a clip's loudest frame are "active"
SAMPLE_PER_CLASS = 40     # clips decoded per class for the spectral and event measurements
SAMPLE_SECONDS = 30.0     # at most this much of each sampled clip is decoded


def row_durations(rows: list[ManifestRow]) -> np.ndarray:
    """Seconds of audio per row ``(n,)``: the segment length, else the file's duration (NaN if unreadable)."""
    from roomtone.audio import info

    out = np.full(len(rows), np.nan)
    cache: dict[str, float] = {}
    for i, r in enumerate(rows):
        if r.start is not None and r.end is not None:
            out[i] = r.end - r.start
            continue
        if r.path not in cache:
            try:
                cache[r.path] = info(r.path).duration
            except RoomtoneError:
                cache[r.path] = math.nan
        out[i] = cache[r.path] - (r.start or 0.0)
    return out


def sample_rows(rows: list[ManifestRow], labels: list[str], *, per_class: int = SAMPLE_PER_CLASS,
                seed: int = 0) -> list[int]:
    """Indices of up to ``per_class`` rows of each label, drawn with a seeded generator (sorted)."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for lab in labels:
        idx = [i for i, r in enumerate(rows) if r.label == lab]
        out += [int(i) for i in rng.permutation(idx)[:per_class]]
    return sorted(out)


def active_spectrum(wave: np.ndarray, *, sr: int, n_fft: int | None = None, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Summed power spectrum ``(n_fft // 2 + 1,)`` of the frames within ``active_db`` of the loudest frame.

    ``n_fft`` defaults to ~20 ms (a power of two); Hann frames with 50 % overlap, DC removed per frame.
    """
    n_fft = n_fft or 2 ** max(6, int(round(math.log2(0.02 * sr))))
    w = np.asarray(wave, dtype=np.float64).reshape(-1)
    if w.size < n_fft:
        w = np.pad(w, (0, n_fft - w.size))
    frames = np.lib.stride_tricks.sliding_window_view(w, n_fft)[:: n_fft // 2]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    if not np.any(energy > 0):
        return np.zeros(n_fft // 2 + 1)
    keep = energy >= energy.max() * 10 ** (-active_db / 10)
    return power[keep].sum(axis=0)


def band_of(spectrum: np.ndarray, *, sr: int, fraction: float = ENERGY_FRACTION) -> tuple[float, float]:
    """``(f_low, f_high)`` in Hz holding ``fraction`` of ``spectrum``'s energy (the rest split evenly below/above)."""
    if not 0 < fraction < 1:
        raise ParameterError(f"fraction={fraction!r} must be in (0, 1)")
    s = np.asarray(spectrum, dtype=np.float64)
    total = s.sum()
    freqs = np.linspace(0.0, sr / 2, s.size)
    if total <= 0:
        return 0.0, sr / 2
    c = np.cumsum(s) / total
    tail = (1 - fraction) / 2
    lo = freqs[int(np.searchsorted(c, tail))]
    hi = freqs[min(s.size - 1, int(np.searchsorted(c, 1 - tail)))]
    return float(lo), float(hi)


def class_bands(waves: list[np.ndarray], y: np.ndarray, *, labels: list[str], sr: int,
                fraction: float = ENERGY_FRACTION) -> list[dict]:
    """Per class ``{"label", "f_low", "f_high", "n_clips"}``: the band of its active-frame energy at ``sr``."""
    out = []
    y = np.asarray(y)
    for k, lab in enumerate(labels):
        spec = None
        n = 0
        for i in np.flatnonzero(y == k):
            if waves[i].size == 0:
                continue
            s = active_spectrum(waves[i], sr=sr)
            s = s / s.sum() if s.sum() > 0 else s   # every clip weighs the same, loud or quiet
            spec = s if spec is None else spec + s
            n += 1
        if spec is None:
            continue
        lo, hi = band_of(spec, sr=sr, fraction=fraction)
        out.append({"label": lab, "f_low": lo, "f_high": hi, "n_clips": n})
    return out


def noise_floor_db(wave: np.ndarray, *, sr: int) -> float:
    """Quiet-to-loud range of a clip in dB: 95th minus 10th percentile of 20 ms frame energies."""
    from roomtone.recipe.events import frame_energy_db

    e = frame_energy_db(wave, sr=sr, hop_s=0.01, win_s=0.02)
    return float(np.percentile(e, 95) - np.percentile(e, 10)) if e.size else 0.0


def measure(rows: list[ManifestRow], *, labels: list[str], sr: int, seed: int = 0,
            per_class: int = SAMPLE_PER_CLASS, progress: bool = False) -> dict:
    """Everything the recipe decides from, on the rows of a prepared folder decoded at ``sr`` (the files' rate).

    Returns ``{"sr", "n_rows", "n_train", "counts", "imbalance", "groups", "durations" {min, p10, median, p90,
    p95, max}, "train_durations" (s per train/valid row), "bands" (per class), "f_low", "f_high", "events" (``analyse_events``), "range_db" (median
    quiet-to-loud range), "sampled"}``.
    """
    from roomtone.recipe.events import analyse_events

    if not rows:
        raise DataError("the prepared folder has no rows to measure")
    durs = row_durations(rows)
    ok = np.isfinite(durs)
    if not ok.any():
        raise DataError("no row is readable: cannot measure durations")
    is_train = [(r.split or "train") in ("train", "valid") for r in rows]
    train = [r for r, t in zip(rows, is_train, strict=True) if t]
    counts = Counter(r.label for r in train)
    sizes = [counts.get(lab, 0) for lab in labels]
    idx = sample_rows(rows, labels, per_class=per_class, seed=seed)
    waves, kept = decode_rows([rows[i] for i in idx], sr=sr, seconds=SAMPLE_SECONDS)
    kept = [idx[j] for j in kept]
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[rows[i].label] for i in kept], dtype=np.int64)
    bands = class_bands(waves, y, labels=labels, sr=sr)
    if not bands:
        raise DataError("none of the sampled files could be decoded")
    events = analyse_events(waves, y, labels=labels, sr=sr)
    d = durs[ok]
    return {
        "sr": int(sr), "n_rows": len(rows), "n_train": len(train), "counts": dict(zip(labels, sizes, strict=True)),
        "imbalance": float(max(sizes) / max(1, min(sizes))) if sizes else 1.0,
        "groups": len({r.group for r in rows if r.group}),
        "durations": {k: float(v) for k, v in zip(("min", "p10", "median", "p90", "p95", "max"),
                                                  np.percentile(d, [0, 10, 50, 90, 95, 100]), strict=True)},
        "bands": bands, "f_low": float(min(b["f_low"] for b in bands)),
        "f_high": float(max(b["f_high"] for b in bands)), "events": events,
        "range_db": float(np.median([noise_floor_db(w, sr=sr) for w in waves if w.size])), "sampled": len(kept),
        "train_durations": [float(x) for x, t in zip(durs, is_train, strict=True) if t and np.isfinite(x)],
    }


def decode_rows(rows: list[ManifestRow], *, sr: int, seconds: float) -> tuple[list[np.ndarray], list[int]]:
    """The first ``seconds`` of each row (its segment) at ``sr`` as float64: ``(waves, indices of the rows kept)``;
    unreadable rows are left out."""
    from roomtone.audio import load

    waves, kept = [], []
    for i, r in enumerate(rows):
        dur = seconds if r.end is None else min(seconds, r.end - (r.start or 0.0))
        try:
            x, _ = load(r.path, sr=sr, offset=r.start or 0.0, duration=dur)
        except RoomtoneError:
            continue
        waves.append(x.numpy().astype(np.float64))
        kept.append(i)
    return waves, kept
