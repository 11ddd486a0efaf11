"""CQT vs librosa.cqt (chirp and real speech) and the in-graph Resample vs analytic signals and soxr."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.features import CQT, Resample

librosa = pytest.importorskip("librosa")

CQT_MEDIAN_REL = 0.01  # issue bar: median relative magnitude error vs librosa.cqt


def _median_rel(out, ref, *, within_db=None):
    rel = np.abs(out - ref) / np.maximum(ref, 1e-30)
    if within_db is not None:
        rel = rel[20 * np.log10(np.maximum(ref, 1e-30) / ref.max()) > -within_db]
    return float(np.median(rel))


def _check(y, sr, exact_within_db=None, **kw):
    out = CQT(sr, **kw).double()(torch.from_numpy(y)).numpy()
    exact = np.abs(librosa.cqt(y, sr=sr, sparsity=0.0, **kw))
    default = np.abs(librosa.cqt(y, sr=sr, **kw))
    assert out.shape == default.shape
    # librosa with its exact (non-sparse) wavelet basis: every bin of speech; for a pure chirp the bins
    # within 80 dB of the peak (below that, 35-70% of a chirp's bins, only the two decimation filters'
    # stopbands are compared)
    assert _median_rel(out, exact, within_db=exact_within_db) <= CQT_MEDIAN_REL
    # librosa defaults drop 1% of each wavelet (sparsity=0.01), which only moves the quiet bins
    assert _median_rel(out, default, within_db=40) <= CQT_MEDIAN_REL
    return out


def test_cqt_matches_librosa_on_chirp():
    sr = 22050
    y = librosa.chirp(fmin=32.0, fmax=4000.0, sr=sr, duration=2.0)
    out = _check(y, sr, exact_within_db=80)  # librosa defaults: hop 512, C1, 84 bins, 12 per octave
    assert out.shape == (84, 1 + y.size // 512)
    _check(y, sr, exact_within_db=80, hop_length=256, fmin=55.0, n_bins=72, bins_per_octave=24)


@pytest.mark.data
def test_cqt_matches_librosa_on_fsdd_speech(fsdd_dir):
    for name in ("3_jackson_0.wav", "7_theo_12.wav"):
        path = fsdd_dir / name
        if not path.exists():
            pytest.skip(f"{path} missing")
        y, sr = librosa.load(path, sr=None)
        _check(y.astype(np.float64), sr, hop_length=64, fmin=50.0, n_bins=60)


def test_cqt_batch_lengths_gradients():
    sr = 16000
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal(8000))
    b = torch.from_numpy(rng.standard_normal(5000))
    layer = CQT(sr, hop_length=256, fmin=60.0, n_bins=48).double()
    batch = torch.zeros(2, 8000, dtype=torch.float64)
    batch[0], batch[1, :5000] = a, b
    batch[1, 5000:] = 1.0  # padding must not leak
    out, n = layer(batch, torch.tensor([8000, 5000]))
    assert n.tolist() == [1 + 8000 // 256, 1 + 5000 // 256]
    torch.testing.assert_close(out[0], layer(a), atol=1e-9, rtol=0)
    torch.testing.assert_close(out[1, :, : int(n[1])], layer(b), atol=1e-9, rtol=0)
    assert (out[1, :, int(n[1]):] == 0).all()
    x = torch.randn(2, 4000, requires_grad=True)
    CQT(sr, hop_length=128, fmin=100.0, n_bins=36)(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ParameterError, match="Nyquist"):
        CQT(8000, fmin=100.0, n_bins=84)


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (16000, 22050), (48000, 44100), (32000, 16000)])
def test_resample_band_limited_tones(orig, new):
    def tones(sr, n):
        t = np.arange(n) / sr
        return np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 3000 * t + 0.3)

    y = tones(orig, orig // 2)
    out = Resample(orig, new).double()(torch.from_numpy(y)).numpy()
    assert out.size == int(np.ceil(y.size * new / orig))
    inner = slice(100, -100)  # away from the zero-padded edges
    assert np.abs(out - tones(new, out.size))[inner].max() < 1e-5
    # agrees with soxr (offline path) in the interior
    import soxr

    ref = soxr.resample(y, orig, new, quality="VHQ")
    assert np.abs(out[: ref.size] - ref[: out.size])[inner].max() < 1e-3


def test_resample_rejects_above_nyquist_and_lengths():
    sr = 32000
    t = np.arange(sr // 2) / sr
    y = torch.from_numpy(np.sin(2 * np.pi * 12000 * t))  # above the new Nyquist (8 kHz)
    out = Resample(sr, 16000).double()(y)
    assert out[200:-200].abs().max() < 1e-4
    x = torch.randn(2, 1000)
    y, n = Resample(16000, 8000)(x, torch.tensor([1000, 501]))
    assert n.tolist() == [500, 251] and y.shape == (2, 500)
    torch.testing.assert_close(y[1, :251], Resample(16000, 8000)(x[1, :501]), atol=1e-5, rtol=0)
    with pytest.raises(ParameterError, match="orig_sr=0"):
        Resample(0, 16000)
