"""Segmentation and trimming: silence trim, fixed-length clips, sliding windows.

Functional core on arrays/tensors (no randomness): :func:`trim_bounds` (librosa ``effects.trim``
semantics), :func:`fix_length` (energy-centred crop or zero pad), :func:`sliding_windows`; and
:func:`segment_rows`, which turns manifest rows into trimmed rows or window rows (``start``/``end``
in seconds), each window keeping its file's label and group.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from roomtone.errors import ParameterError
from roomtone.prepare.manifest import ManifestRow


def _as_numpy(audio) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        return audio.detach().cpu().numpy()
    return np.asarray(audio)


def trim_bounds(audio, *, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512) -> tuple[int, int]:
    """Sample indices ``(start, end)`` of the non-silent part of ``audio`` (shape ``(time,)``).

    A frame is silent when its RMS is more than ``top_db`` dB below the loudest frame's RMS (frames
    centred, zero-padded: librosa ``effects.trim`` semantics, which the tests check). Digital
    silence is kept whole (as librosa); empty audio gives ``(0, 0)``.
    """
    if top_db <= 0:
        raise ParameterError(f"top_db={top_db!r} must be > 0 dB")
    if frame_length <= 0 or hop_length <= 0:
        raise ParameterError(f"frame_length={frame_length}, hop_length={hop_length} must be positive")
    y = _as_numpy(audio).astype(np.float64, copy=False)
    if y.ndim != 1:
        raise ParameterError(f"audio has shape {y.shape}; expected (time,)")
    n = y.shape[0]
    if n == 0:
        return 0, 0
    pad = frame_length // 2
    yp = np.pad(y, pad)
    n_frames = 1 + (yp.shape[0] - frame_length) // hop_length
    if n_frames <= 0:
        return 0, n
    c = np.concatenate([[0.0], np.cumsum(yp**2)])
    starts = np.arange(n_frames) * hop_length
    power = (c[starts + frame_length] - c[starts]) / frame_length
    power = np.maximum(power, 0.0)
    amin = 1e-10
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(max(amin, float(power.max())))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return 0, 0
    start = int(loud[0] * hop_length)
    end = int(min(n, (loud[-1] + 1) * hop_length))
    return start, end


def energy_window(audio, *, length: int) -> int:
    """Start index of the ``length``-sample window with the most energy (first one on ties)."""
    y = _as_numpy(audio).astype(np.float64, copy=False)
    n = y.shape[-1]
    if length >= n:
        return 0
    e = y**2 if y.ndim == 1 else (y**2).sum(axis=0)
    c = np.concatenate([[0.0], np.cumsum(e)])
    sums = c[length:] - c[:-length]
    return int(np.argmax(sums >= sums.max() - 1e-12 * max(1.0, sums.max())))


def fix_length(audio: torch.Tensor, *, length: int, pad: str = "end") -> torch.Tensor:
    """Fixed length ``length`` along the last axis: energy-centred crop when longer, zero pad when shorter.

    Args:
        audio: ``(..., time)`` tensor.
        length: samples (> 0).
        pad: where zeros go when padding: ``"end"`` or ``"center"`` (split before/after).

    Returns:
        ``(..., length)``.
    """
    if not isinstance(length, (int, np.integer)) or length <= 0:
        raise ParameterError(f"length={length!r} must be a positive integer (samples)")
    if pad not in ("end", "center"):
        raise ParameterError(f"pad={pad!r} must be 'end' or 'center'")
    n = audio.shape[-1]
    if n > length:
        s = energy_window(audio if audio.ndim == 1 else audio.reshape(-1, n), length=length)
        return audio[..., s:s + length]
    if n < length:
        missing = length - n
        before = missing // 2 if pad == "center" else 0
        return torch.nn.functional.pad(audio, (before, missing - before))
    return audio


def sliding_windows(start: float, end: float, *, window: float, hop: float) -> list[tuple[float, float]]:
    """Windows ``[(s, e), ...]`` in seconds covering ``[start, end]``.

    Windows start every ``hop`` seconds; when the last full window stops short of ``end``, one more
    window is aligned to ``end`` so no audio is left out. A span shorter than ``window`` gives one
    window ``(start, end)`` (pad it later with ``clip_seconds``).
    """
    if window <= 0 or hop <= 0:
        raise ParameterError(f"window={window!r} and hop={hop!r} must be > 0 seconds")
    span = end - start
    if span <= window + 1e-9:
        return [(start, end)]
    n = int(math.floor((span - window) / hop + 1e-9)) + 1
    out = [(start + k * hop, start + k * hop + window) for k in range(n)]
    if out[-1][1] < end - 1e-6:
        out.append((end - window, end))
    return [(round(s, 6), round(e, 6)) for s, e in out]


def segment_rows(
    rows: list[ManifestRow],
    *,
    trim_db: float | None = None,
    window: float | None = None,
    hop: float | None = None,
    min_seconds: float = 0.0,
    on_error=None,
) -> list[ManifestRow]:
    """Trim leading/trailing silence (``trim_db`` below the peak frame) and/or cut sliding windows.

    Each output row keeps label, group, split and extras of its file and gets ``start``/``end`` in
    seconds. Rows that already have ``start``/``end`` are trimmed/windowed inside that span. A file
    that is entirely silent at ``trim_db`` keeps its whole span. ``hop`` defaults to ``window``
    (no overlap). Rows that cannot be read are passed to ``on_error(row, reason)`` and left out
    (``on_error=None`` re-raises).
    """
    from roomtone.audio import info, load
    from roomtone.errors import AudioError

    if window is None and hop is not None:
        raise ParameterError(f"hop={hop} needs window= (seconds)")
    if window is not None and window <= 0:
        raise ParameterError(f"window={window!r} must be > 0 seconds")
    hop = window if hop is None else hop
    if trim_db is None and window is None:
        return list(rows)
    out = []
    for r in rows:
        try:
            if trim_db is not None:
                audio, sr = load(r.path, offset=r.start or 0.0,
                                 duration=None if r.end is None else r.end - (r.start or 0.0))
                a, b = trim_bounds(audio, top_db=trim_db)
                s0 = r.start or 0.0
                if b <= a:  # all silent: keep the whole span
                    a, b = 0, audio.shape[-1]
                start, end = s0 + a / sr, s0 + b / sr
            else:
                meta = info(r.path)
                start = r.start or 0.0
                end = r.end if r.end is not None else meta.duration
        except AudioError as exc:
            if on_error is None:
                raise
            on_error(r, str(exc))
            continue
        if end - start < min_seconds:
            if on_error is not None:
                on_error(r, f"only {end - start:.3f} s of sound after trimming (< {min_seconds} s)")
                continue
        spans = [(start, end)] if window is None else sliding_windows(start, end, window=window, hop=hop)
        for s, e in spans:
            out.append(ManifestRow(path=r.path, label=r.label, group=r.group, split=r.split,
                                   start=round(s, 6), end=round(e, 6), extra=dict(r.extra)))
    return out
