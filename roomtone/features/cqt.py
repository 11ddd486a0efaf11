"""Constant-Q transform magnitude as a torch layer (multi-rate time-domain filter bank).

Method: each octave's complex Hann-windowed wavelets (librosa's ``filters.wavelet`` definition) are
correlated with the signal by one strided ``conv1d`` (real and imaginary kernels stacked); between
octaves the signal is low-passed and decimated by 2 with the windowed-sinc filter of
:mod:`roomtone.features.resample`, so every kernel stays short. Scaling follows ``librosa.cqt``
(``scale=True``, ``norm=1``): bin ``k`` is ``sqrt(L_k) * |sum_n w_k[n] e^{2 pi i f_k n / sr} y[t hop + n]| /
sum_n w_k[n]`` with ``L_k = Q sr / f_k``. Output ``(..., n_bins, 1 + time // hop_length)``, lowest bin first.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roomtone.errors import ParameterError
from roomtone.features import functional as Fn
from roomtone.features.filters import check_positive_int
from roomtone.features.resample import sinc_kernel

C1_HZ = 32.70319566257483
_HANN_BANDWIDTH = 1.50018310546875  # equivalent noise bandwidth of the Hann window, in bins


def cqt_frequencies(*, n_bins: int, fmin: float, bins_per_octave: int = 12) -> np.ndarray:
    """Centre frequencies in Hz, ``fmin * 2 ** (k / bins_per_octave)``; float64 ``(n_bins,)``."""
    return fmin * 2.0 ** (np.arange(n_bins, dtype=np.float64) / bins_per_octave)


def _alpha(bins_per_octave: int) -> float:
    r = 2.0 ** (1.0 / bins_per_octave)
    return (r**2 - 1) / (r**2 + 1)


def wavelet_kernels(freqs: np.ndarray, *, sr: float, decimation: int, q: float) -> np.ndarray:
    """Complex wavelets as stacked real kernels ``(2 * n, K)`` for a signal decimated by ``decimation``.

    librosa's discretisation at the reduced rate ``r = sr / decimation``: ``L = q r / f`` samples at
    offsets ``-ceil(L/2) .. floor(L/2) - 1``, periodic Hann, L1-normalised, times ``sqrt(q sr / f)``,
    applied as a convolution (librosa multiplies FFTs), i.e. time-reversed in this correlation kernel.
    Centred at kernel index ``K // 2``.
    """
    import scipy.signal

    rate = sr / decimation
    rows = []
    for f in freqs:
        length = q * rate / f
        n = np.arange(-length // 2, length // 2)
        win = scipy.signal.get_window("hann", n.size, fftbins=True)
        sig = np.sqrt(q * sr / f) * win * np.exp(2j * np.pi * f * n / rate) / win.sum()
        rows.append((-n.astype(int), sig))
    half = int(max(np.abs(n).max() for n, _ in rows))
    kernel = np.zeros((len(freqs), 2 * half + 1), dtype=np.complex128)
    for i, (n, sig) in enumerate(rows):
        kernel[i, n + half] = sig
    return np.concatenate([kernel.real, kernel.imag], axis=0)


class CQT(nn.Module):
    """Constant-Q magnitude ``(..., time) -> (..., n_bins, frames)``; matches ``librosa.cqt`` (|C|).

    Args:
        sr: sample rate (Hz). hop_length: samples between frames (must be divisible by
            ``2 ** (n_octaves - 1)`` for the fast multi-rate path; otherwise lower octaves run at a
            higher rate with longer kernels, still correct).
        fmin: lowest bin (Hz; default C1 = 32.70 Hz). n_bins, bins_per_octave: as in librosa.
        filter_scale: wavelet length multiplier (Q = filter_scale / alpha).

    ``forward(x, lengths=None)``; padding is zeros (librosa's ``pad_mode="constant"``). Exports to ONNX
    with dynamic batch and time: while exporting, decimation runs as a strided conv1d (no FFT op).
    """

    def __init__(self, sr: int = 22050, hop_length: int = 512, fmin: float | None = None, n_bins: int = 84,
                 bins_per_octave: int = 12, *, filter_scale: float = 1.0) -> None:
        super().__init__()
        for name, v in (("sr", sr), ("hop_length", hop_length), ("n_bins", n_bins),
                        ("bins_per_octave", bins_per_octave)):
            check_positive_int(name, v)
        fmin = C1_HZ if fmin is None else float(fmin)
        if not fmin > 0:
            raise ParameterError(f"fmin={fmin!r} must be > 0 Hz")
        if not filter_scale > 0:
            raise ParameterError(f"filter_scale={filter_scale!r} must be > 0")
        self.sr, self.hop_length, self.fmin, self.n_bins = int(sr), int(hop_length), fmin, int(n_bins)
        self.bins_per_octave, self.filter_scale = int(bins_per_octave), float(filter_scale)
        freqs = cqt_frequencies(n_bins=n_bins, fmin=fmin, bins_per_octave=bins_per_octave)
        self.freqs = freqs
        q = filter_scale / _alpha(bins_per_octave)
        cutoff = float(np.max(freqs * (1 + 0.5 * _HANN_BANDWIDTH / q)))
        if cutoff > sr / 2:
            raise ParameterError(
                f"fmin={fmin}, n_bins={n_bins}, bins_per_octave={bins_per_octave}: the top filter reaches "
                f"{cutoff:.1f} Hz, above Nyquist sr/2={sr / 2}; lower n_bins or fmin"
            )
        n_filters = min(bins_per_octave, n_bins)
        n_octaves = int(math.ceil(n_bins / bins_per_octave))
        dec, self.dec_left = sinc_kernel(orig=2, new=1)
        self.register_buffer("dec_kernel", torch.as_tensor(dec, dtype=torch.get_default_dtype()), persistent=False)
        # early decimation (librosa's rule): only while the top octave stays far below the new Nyquist
        twos = (hop_length & -hop_length).bit_length() - 1
        early = min(max(0, int(math.ceil(math.log2(sr / 2 / cutoff)) - 1) - 1), max(0, twos - n_octaves + 1))
        margin = 0  # zeros appended on the right so decimation never truncates what a frame sees
        self.plan: list[tuple[int, int, int, int]] = []  # (decimate_before, hop, bin_lo, bin_hi)
        factor, hop, decimate = 2**early, hop_length // 2**early, early
        for i in range(n_octaves):
            hi = n_bins - n_filters * i
            lo = max(0, hi - n_filters)
            kern = wavelet_kernels(freqs[lo:hi], sr=sr, decimation=factor, q=q)
            self.register_buffer(f"kernel_{i}", torch.as_tensor(kern, dtype=torch.get_default_dtype()),
                                 persistent=False)
            self.plan.append((decimate, hop, lo, hi))
            margin = max(margin, (kern.shape[-1] // 2 + 1) * factor)
            decimate = 0
            if hop % 2 == 0 and i < n_octaves - 1:
                hop, factor, decimate = hop // 2, factor * 2, 1
        self.margin = margin + 2 * dec.shape[-1] * factor

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.hop_length, rounding_mode="floor") + 1

    def _decimate(self, y: torch.Tensor) -> torch.Tensor:
        """Low-pass (Kaiser-windowed sinc) and keep every second sample; ``(N, T) -> (N, ceil(T / 2))``.

        Eager: an exact linear convolution through the FFT (a strided conv1d with a single input channel
        is an order of magnitude slower on CPU). Exporting/tracing: the same FIR filter as a stride-2
        ``conv1d`` (no FFT or shape arithmetic outside the graph; equal up to float rounding)."""
        h = self.dec_kernel[0].to(y.dtype)
        width, left = h.shape[-1], self.dec_left
        if Fn.exporting():
            padded = F.pad(y[:, None, :], (left, width - 1 - left))
            return F.conv1d(padded, h[None, None, :], stride=2)[:, 0]
        import scipy.fft

        t = y.shape[-1]
        n = scipy.fft.next_fast_len(t + width - 1, real=True)
        full = torch.fft.irfft(torch.fft.rfft(y, n=n) * torch.fft.rfft(h.flip(-1), n=n), n=n)
        start = width - 1 - left
        return full[:, start: start + t: 2]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        from roomtone.features.layers import run_in_cpu_chunks

        return run_in_cpu_chunks(self._forward, x, lengths, n_fft=1, hop_length=self.hop_length, bytes_per_sample=8)

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = Fn.check_lengths(lengths, x, axis_size=x.shape[-1], what="samples")
        with Fn.float32_context(x):
            x = Fn.as_float(x)
            shape = x.shape
            if lengths is not None:
                x = x * Fn.valid_mask(lengths, shape[-1], x.dim()).to(x.dtype)
            y = x.reshape(-1, shape[-1])
            n_frames = 1 + shape[-1] // self.hop_length
            y = F.pad(y, (0, max(0, (n_frames - 1) * self.hop_length + self.margin - shape[-1])))
            out = [None] * len(self.plan)
            for i, (decimate, hop, _lo, _hi) in enumerate(self.plan):
                for _ in range(decimate):
                    y = self._decimate(y)
                kern = getattr(self, f"kernel_{i}").to(y.dtype)
                width = kern.shape[-1]
                need = (n_frames - 1) * hop + width
                padded = F.pad(y, (width // 2, max(0, need - y.shape[-1] - width // 2)))
                frames = padded.unfold(-1, width, hop)[:, :n_frames]  # (N, frames, width), a view
                resp = torch.matmul(frames, kern.T).transpose(1, 2)  # (N, 2 * bins, frames)
                nb = kern.shape[0] // 2
                power = torch.square(resp[:, :nb])
                power = power.addcmul(resp[:, nb:], resp[:, nb:])
                out[i] = power.clamp(min=torch.finfo(power.dtype).tiny).sqrt()
            spec = torch.cat(out[::-1], dim=1).reshape(*shape[:-1], self.n_bins, n_frames)
        if lengths is None:
            return spec
        nf = self.frame_lengths(lengths)
        return Fn.mask_frames(spec, nf), nf

    def extra_repr(self) -> str:
        return (f"sr={self.sr}, hop_length={self.hop_length}, fmin={self.fmin:.2f}, n_bins={self.n_bins}, "
                f"bins_per_octave={self.bins_per_octave}")
