"""Listen to what the model hears: audio rebuilt from the log-mel (dB) the front end produces.

dB -> mel power -> linear-frequency power by non-negative least squares against the front end's own
mel filterbank (pseudo-inverse start, multiplicative updates) -> magnitude -> phase by fast
Griffin-Lim (momentum 0.99). What is lost (fine pitch above the mel resolution, anything outside
``fmin``..``fmax``, detail under ``top_db``) is lost for the model too.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from roomtone.errors import ParameterError
from roomtone.expect.frontend import mel_filterbank, settings_of


def mel_to_power(mel_power: np.ndarray, fb: np.ndarray, *, n_iter: int = 100) -> np.ndarray:
    """Non-negative ``S`` ``(n_freq, frames)`` minimising ``||fb @ S - mel_power||`` for ``fb`` ``(n_mels, n_freq)``."""
    mel_power = np.asarray(mel_power, dtype=np.float64)
    fb = np.asarray(fb, dtype=np.float64)
    if mel_power.ndim != 2 or mel_power.shape[0] != fb.shape[0]:
        raise ParameterError(f"mel_power of shape {mel_power.shape} must be (n_mels={fb.shape[0]}, frames)")
    s = np.maximum(np.linalg.pinv(fb) @ mel_power, 0.0)
    s += 1e-3 * s.mean() + 1e-12
    ftf, ftm = fb.T @ fb, fb.T @ mel_power
    for _ in range(n_iter):
        s *= ftm / np.maximum(ftf @ s, 1e-20)
    return s


def griffin_lim(magnitude: torch.Tensor, *, n_fft: int, hop_length: int, win_length: int | None = None,
                n_iter: int = 32, momentum: float = 0.99, length: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Waveform ``(time,)`` whose STFT magnitude approximates ``magnitude`` ``(n_fft // 2 + 1, frames)``.

    Fast Griffin-Lim (Perraudin et al. 2013) with a Hann window, centred frames. The initial phases
    are drawn from ``generator`` (a fresh one seeded 0 when None), so the result is deterministic.
    """
    if n_iter < 1 or not 0 <= momentum < 1:
        raise ParameterError(f"n_iter={n_iter!r} must be >= 1 and momentum={momentum!r} in [0, 1)")
    win_length = win_length or n_fft
    mag = torch.as_tensor(magnitude, dtype=torch.float32)
    if mag.ndim != 2 or mag.shape[0] != n_fft // 2 + 1:
        raise ParameterError(f"magnitude of shape {tuple(mag.shape)} must be (n_fft // 2 + 1 = {n_fft // 2 + 1}, frames)")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    window = torch.hann_window(win_length)
    angles = torch.polar(torch.ones_like(mag), 2 * math.pi * torch.rand(mag.shape, generator=g))
    prev = torch.zeros_like(angles)
    kw = {"n_fft": n_fft, "hop_length": hop_length, "win_length": win_length, "window": window, "center": True}
    for _ in range(n_iter):
        wave = torch.istft(mag * angles, length=length, **kw)
        rebuilt = torch.stft(wave, return_complex=True, pad_mode="constant", **kw)
        if rebuilt.shape[-1] != mag.shape[-1]:
            rebuilt = rebuilt[..., : mag.shape[-1]]
            if rebuilt.shape[-1] < mag.shape[-1]:
                rebuilt = torch.nn.functional.pad(rebuilt, (0, mag.shape[-1] - rebuilt.shape[-1]))
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles = angles / (angles.abs() + 1e-16)
        prev = rebuilt
    return torch.istft(mag * angles, length=length, **kw)


def logmel_to_audio(logmel_db: np.ndarray | torch.Tensor, *, frontend: torch.nn.Module, n_iter: int = 32,
                    length: int | None = None, generator: torch.Generator | None = None) -> np.ndarray:
    """Audio ``(time,)`` float32 at ``frontend.sr`` rebuilt from one log-mel ``(n_mels, frames)`` in dB (ref 1)."""
    s = settings_of(frontend)
    db = np.asarray(logmel_db.detach().cpu() if isinstance(logmel_db, torch.Tensor) else logmel_db, dtype=np.float64)
    power = mel_to_power(10.0 ** (db / 10.0), mel_filterbank(frontend))
    wave = griffin_lim(torch.from_numpy(np.sqrt(power)).float(), n_fft=s["n_fft"], hop_length=s["hop_length"],
                       win_length=s["win_length"], n_iter=n_iter, length=length, generator=generator)
    return wave.numpy().astype(np.float32)


def spectral_convergence(reference_db: np.ndarray, estimate_db: np.ndarray) -> float:
    """``||10^(a/20) - 10^(b/20)||_F / ||10^(a/20)||_F`` between two dB log-mels (0 = identical)."""
    a = 10.0 ** (np.asarray(reference_db, dtype=np.float64) / 20)
    b = 10.0 ** (np.asarray(estimate_db, dtype=np.float64) / 20)
    n = min(a.shape[-1], b.shape[-1])
    return float(np.linalg.norm(a[..., :n] - b[..., :n]) / max(np.linalg.norm(a[..., :n]), 1e-20))
