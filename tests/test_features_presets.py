"""Parity presets vs their references: librosa defaults, PANNs' published settings, Kaldi's fbank definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.features.presets import FLT_EPSILON, KaldiFbank, frontend

librosa = pytest.importorskip("librosa")


def _speechlike(sr, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 3 * t)
    y = sum(np.sin(2 * np.pi * np.cumsum(k * f0) / sr) / k for k in range(1, 20))
    return 0.1 * y * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.01 * rng.standard_normal(t.size) + 0.02


def test_librosa_preset_equals_librosa_defaults():
    y = _speechlike(22050)
    fe = frontend("librosa").double()
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050), top_db=80.0)
    out = fe(torch.from_numpy(y)).numpy()
    assert out.shape == ref.shape == (128, 1 + y.size // 512)
    assert np.abs(out - ref).max() <= 1e-3
    assert (fe.sr, fe.n_fft, fe.hop_length, fe.n_mels) == (22050, 2048, 512, 128)


def test_panns_preset_published_settings():
    fe = frontend("panns").double()
    assert (fe.sr, fe.n_fft, fe.hop_length, fe.win_length, fe.n_mels, fe.fmin, fe.fmax) == (
        32000, 1024, 320, 1024, 64, 50.0, 14000.0)
    y = _speechlike(32000)
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True,
                               pad_mode="reflect")) ** 2
    mel = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000, dtype=np.float64) @ spec
    ref = 10 * np.log10(np.maximum(mel, 1e-10))  # PANNs: ref 1.0, amin 1e-10, top_db None
    assert np.abs(fe(torch.from_numpy(y)).numpy() - ref).max() <= 1e-3


def _kaldi_reference(y, *, sr=16000, window="povey", n_mels=128, low=20.0):
    """Per-frame loop written from the Kaldi fbank definition (FrameExtractionOptions + MelBanks)."""
    frame_len, shift, n_fft = int(sr * 0.025), int(sr * 0.010), 512
    n_frames = 1 + (len(y) - frame_len) // shift
    a = 2 * np.pi / (frame_len - 1)
    hann = 0.5 - 0.5 * np.cos(a * np.arange(frame_len))
    win = hann**0.85 if window == "povey" else hann

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    lo, hi = mel(low), mel(sr / 2)
    delta = (hi - lo) / (n_mels + 1)
    out = np.zeros((n_mels, n_frames))
    for t in range(n_frames):
        w = y[t * shift: t * shift + frame_len].astype(np.float64).copy()
        w -= w.mean()
        for i in range(frame_len - 1, 0, -1):
            w[i] -= 0.97 * w[i - 1]
        w[0] -= 0.97 * w[0]
        w *= win
        power = np.abs(np.fft.rfft(w, n_fft)) ** 2
        for m in range(n_mels):
            left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
            energy = 0.0
            for k in range(n_fft // 2):  # Kaldi skips the Nyquist bin
                b = mel(k * sr / n_fft)
                if left < b < right:
                    energy += power[k] * ((b - left) / (center - left) if b <= center else (right - b) / (right - center))
            out[m, t] = np.log(max(energy, FLT_EPSILON))
    return out


@pytest.mark.parametrize("window", ["povey", "hanning"])
def test_kaldi_fbank_matches_definition(window):
    y = _speechlike(16000, seconds=0.3, seed=1)
    fe = frontend("kaldi-fbank", window=window).double()
    assert (fe.win_length, fe.hop_length, fe.n_fft, fe.n_mels) == (400, 160, 512, 128)
    out = fe(torch.from_numpy(y)).numpy()
    ref = _kaldi_reference(y, window=window)
    assert out.shape == ref.shape == (128, 1 + (y.size - 400) // 160)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_presets_lengths_and_overrides():
    fe = KaldiFbank()
    x = torch.randn(2, 8000)
    out, n = fe(x, torch.tensor([8000, 4000]))
    assert n.tolist() == [48, 23]
    torch.testing.assert_close(out[1, :, :23], fe(x[1, :4000]), atol=1e-4, rtol=1e-5)
    assert frontend("librosa", sr=16000, n_mels=40).n_mels == 40
    with pytest.raises(ParameterError, match="'mfcc'"):
        frontend("mfcc")
    with pytest.raises(ParameterError, match="n_bins"):
        frontend("panns", n_bins=3)
