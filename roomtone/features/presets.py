"""Parity presets: well-known front ends by name, ``frontend(name, **overrides)`` -> one nn.Module.

- ``"librosa"``: ``librosa.power_to_db(librosa.feature.melspectrogram(y, sr=22050), top_db=80)`` with
  librosa >= 0.10 defaults (n_fft 2048, hop 512, 128 Slaney mels, centre frames padded with zeros).
- ``"panns"``: PANNs (Kong et al. 2020) log-mel: 32 kHz, n_fft 1024, hop 320, Hann, 64 mels 50-14000 Hz,
  reflect-padded centre frames, ``10 log10(max(S, 1e-10))`` without top_db.
- ``"kaldi-fbank"``: Kaldi ``compute-fbank-feats`` (and ``torchaudio.compliance.kaldi.fbank``) at 16 kHz:
  25 ms frames every 10 ms without padding (snip edges), DC removed per frame, pre-emphasis 0.97, Povey
  window, FFT size 512, power spectrum, 128 HTK-mel triangles from 20 Hz to Nyquist, natural log,
  dither 0. AST feeds this with ``window="hanning"``; pass it as an override.

All presets map ``(..., time) -> (..., n_mels, frames)`` and accept ``lengths`` like the other layers.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roomtone.errors import ParameterError
from roomtone.features import filters
from roomtone.features import functional as Fn
from roomtone.features.layers import log_mel

FLT_EPSILON = float(np.finfo(np.float32).eps)

PRESETS: dict[str, dict] = {
    "librosa": dict(sr=22050, n_fft=2048, hop_length=512, n_mels=128, fmin=0.0, fmax=None, htk=False,
                    norm="slaney", center=True, pad_mode="constant", top_db=80.0),
    "panns": dict(sr=32000, n_fft=1024, hop_length=320, win_length=1024, n_mels=64, fmin=50.0, fmax=14000.0,
                  htk=False, norm="slaney", center=True, pad_mode="reflect", top_db=None, ref=1.0, amin=1e-10),
    "kaldi-fbank": dict(sr=16000, frame_length_ms=25.0, frame_shift_ms=10.0, n_mels=128, fmin=20.0, fmax=0.0,
                        window="povey", preemphasis=0.97, remove_dc_offset=True, round_to_power_of_two=True),
}


class KaldiFbank(nn.Module):
    """Kaldi log mel filterbank energies ``(..., time) -> (..., n_mels, frames)``.

    Frames: ``1 + (time - win_length) // hop_length`` (Kaldi ``snip_edges=true``). DC removal,
    pre-emphasis, window and DFT are linear in the frame, so they are folded into one fixed kernel applied
    by a strided ``conv1d`` (exact, and exports to ONNX). ``waveform_scale=32768`` reproduces the Kaldi
    binaries, which read int16 samples; torchaudio/AST use 1.0. Output: ``log(max(E, FLT_EPSILON))``.
    """

    def __init__(self, sr: int = 16000, frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
                 n_mels: int = 128, fmin: float = 20.0, fmax: float = 0.0, window: str = "povey",
                 preemphasis: float = 0.97, remove_dc_offset: bool = True, round_to_power_of_two: bool = True,
                 waveform_scale: float = 1.0) -> None:
        super().__init__()
        filters.check_positive_int("sr", sr)
        filters.check_positive_int("n_mels", n_mels)
        self.win_length = int(sr * frame_length_ms / 1000)
        self.hop_length = int(sr * frame_shift_ms / 1000)
        filters.check_positive_int("win_length (from frame_length_ms)", self.win_length)
        filters.check_positive_int("hop_length (from frame_shift_ms)", self.hop_length)
        if not 0 <= preemphasis < 1:
            raise ParameterError(f"preemphasis={preemphasis!r} must be in [0, 1)")
        n = self.win_length
        self.n_fft = 1 << (n - 1).bit_length() if round_to_power_of_two else n
        self.sr, self.n_mels, self.waveform_scale = int(sr), int(n_mels), float(waveform_scale)
        nyq = sr / 2.0
        self.fmin, self.fmax = float(fmin), float(nyq + fmax if fmax <= 0 else fmax)
        op = np.eye(n)
        if remove_dc_offset:
            op = op - 1.0 / n
        pre = np.eye(n) - preemphasis * np.eye(n, k=-1)
        pre[0, 0] = 1.0 - preemphasis
        op = np.diag(filters.get_window(window, n)) @ pre @ op
        dft = Fn.dft_kernel(np.ones(self.n_fft), n_fft=self.n_fft)[:, :n]  # zero padding = first n columns
        self.register_buffer("kernel", torch.as_tensor(dft @ op, dtype=torch.get_default_dtype()), persistent=False)
        fb = filters.kaldi_mel_filterbank(sr=sr, n_fft=self.n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("fb", torch.as_tensor(fb, dtype=torch.get_default_dtype()))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return Fn.frame_lengths(lengths, n_fft=self.win_length, hop_length=self.hop_length, center=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = Fn.check_lengths(lengths, x, axis_size=x.shape[-1], what="samples")
        with Fn.float32_context(x):
            x = Fn.as_float(x)
            shape = x.shape
            if shape[-1] < self.win_length:
                raise ParameterError(f"input has {shape[-1]} samples; Kaldi fbank needs >= {self.win_length}")
            flat = x.reshape(-1, 1, shape[-1]) * self.waveform_scale
            out = F.conv1d(flat, self.kernel.to(flat.dtype)[:, None, :], stride=self.hop_length)
            k = out.shape[1] // 2
            power = out[:, :k].square() + out[:, k:].square()
            fbank = torch.log(torch.matmul(self.fb.to(power.dtype), power).clamp(min=FLT_EPSILON))
            fbank = fbank.reshape(*shape[:-1], self.n_mels, fbank.shape[-1])
        if lengths is None:
            return fbank
        n_frames = self.frame_lengths(lengths)
        return Fn.mask_frames(fbank, n_frames, float(np.log(FLT_EPSILON))), n_frames

    def extra_repr(self) -> str:
        return (f"sr={self.sr}, win_length={self.win_length}, hop_length={self.hop_length}, n_fft={self.n_fft}, "
                f"n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}")


def frontend(name: str, **overrides) -> nn.Module:
    """The named parity front end (see the module docstring), with any of its settings overridden.

    ``frontend("panns")``, ``frontend("librosa", sr=16000)``, ``frontend("kaldi-fbank", window="hanning")``.
    """
    if name not in PRESETS:
        raise ParameterError(f"frontend name={name!r} is not a preset; choose one of {sorted(PRESETS)}")
    settings = {**PRESETS[name]}
    build = KaldiFbank if name == "kaldi-fbank" else log_mel
    allowed = set(inspect.signature(build).parameters)
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ParameterError(f"unknown setting(s) {unknown} for frontend {name!r}; allowed: {sorted(allowed)}")
    settings.update(overrides)
    return build(**settings)
