"""The log-mel front end the expect stage analyses: the exact one the model will see.

``make_frontend`` builds it from explicit settings (or copies a model's ``model.frontend``), so the
feasibility numbers (baseline separability, reconstructions) are computed on the same input,
including the ``fmin``/``fmax`` crop. ``mel_filterbank`` returns its mel weights as a matrix, which
the reconstruction in :mod:`roomtone.expect.listen` inverts.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from roomtone.errors import ParameterError
from roomtone.features.defaults import frontend_defaults


def make_frontend(
    *,
    sr: int,
    n_fft: int | None = None,
    hop_length: int | None = None,
    n_mels: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
    model: torch.nn.Module | None = None,
) -> torch.nn.Module:
    """A log-mel (dB) module mapping ``(..., time)`` at ``sr`` Hz to ``(..., n_mels, frames)``.

    With ``model``, its ``model.frontend`` is returned (the exact input the model sees). Otherwise
    ``roomtone.features.log_mel`` is built with the given settings; None takes
    :func:`roomtone.features.frontend_defaults` (the single home of front-end defaults).
    """
    if model is not None:
        fe = getattr(model, "frontend", None)
        if fe is None:
            raise ParameterError(f"model {type(model).__name__} has no `frontend` attribute; pass the settings instead")
        return fe.eval()
    d = frontend_defaults(sr=sr)
    kw = {
        "sr": int(sr),
        "n_fft": int(n_fft or d["n_fft"]),
        "hop_length": int(hop_length or d["hop_length"]),
        "n_mels": int(n_mels or d["n_mels"]),
        "fmin": float(fmin),
        "fmax": None if fmax is None else float(fmax),
    }
    nyq = sr / 2
    if not 0 <= kw["fmin"] < (kw["fmax"] or nyq) <= nyq:
        raise ParameterError(f"fmin={fmin!r}, fmax={fmax!r} must satisfy 0 <= fmin < fmax <= sr/2 = {nyq}")
    from roomtone.features import log_mel

    return log_mel(**kw).eval()


def settings_of(frontend: torch.nn.Module) -> dict:
    """The front end's settings as a plain dict (``sr, n_fft, hop_length, win_length, n_mels, fmin, fmax``)."""
    out = {}
    for k in ("sr", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax"):
        v = getattr(frontend, k, None)
        if v is None:
            for child in frontend.modules():
                if getattr(child, k, None) is not None:
                    v = getattr(child, k)
                    break
        out[k] = v
    if out["win_length"] is None:
        out["win_length"] = out["n_fft"]
    if out["fmax"] is None and out["sr"]:
        out["fmax"] = out["sr"] / 2
    return out


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _slaney_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters ``(n_mels, n_fft // 2 + 1)`` (the librosa default)."""
    fft_f = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(pts)
    ramps = pts[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    return (w * (2.0 / (pts[2:] - pts[:-2]))[:, None]).astype(np.float32)


def mel_filterbank(frontend: torch.nn.Module) -> np.ndarray:
    """The front end's mel weights as ``(n_mels, n_fft // 2 + 1)`` float32.

    Taken from the module's own buffers when one has that shape (either orientation); otherwise rebuilt
    with the Slaney mel scale and norm (the ``log_mel`` default) from the module's settings.
    """
    s = settings_of(frontend)
    n_freq, n_mels = s["n_fft"] // 2 + 1, s["n_mels"]
    for _, buf in frontend.named_buffers():
        if buf.ndim == 2 and tuple(buf.shape) == (n_mels, n_freq):
            return buf.detach().cpu().numpy().astype(np.float32)
        if buf.ndim == 2 and tuple(buf.shape) == (n_freq, n_mels):
            return buf.detach().cpu().numpy().T.astype(np.float32).copy()
    return _slaney_filterbank(sr=s["sr"], n_fft=s["n_fft"], n_mels=n_mels, fmin=float(s["fmin"] or 0.0),
                              fmax=float(s["fmax"]))
