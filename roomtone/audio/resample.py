"""Offline resampling with soxr (high quality). In-graph resampling lives in ``roomtone.features``."""

from __future__ import annotations

import numpy as np

from roomtone.errors import ParameterError


def resample_array(audio: np.ndarray, *, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample ``audio`` of shape ``(time,)`` or ``(channels, time)`` from ``orig_sr`` to ``target_sr`` Hz."""
    import soxr

    for name, value in (("orig_sr", orig_sr), ("target_sr", target_sr)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ParameterError(f"{name}={value!r} must be a positive integer (Hz)")
    if orig_sr == target_sr:
        return audio
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return soxr.resample(audio, orig_sr, target_sr, quality=quality).astype(np.float32)
    if audio.ndim == 2:
        # soxr wants (time, channels)
        return np.ascontiguousarray(soxr.resample(audio.T, orig_sr, target_sr, quality=quality).T, dtype=np.float32)
    raise ParameterError(f"audio has shape {audio.shape}; expected (time,) or (channels, time)")
