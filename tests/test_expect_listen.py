"""Listening: log-mel -> audio (NNLS mel inverse + fast Griffin-Lim), against librosa and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.expect.frontend import make_frontend, mel_filterbank, settings_of
from roomtone.expect.listen import griffin_lim, logmel_to_audio, mel_to_power, spectral_convergence
from roomtone.features import frontend_defaults

SR = 8000


def _signal(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    f = 200 + 600 * t  # a rising harmonic tone with a syllable-like envelope
    ph = 2 * np.pi * np.cumsum(f) / SR
    env = np.sin(np.pi * t / seconds) ** 2
    return (env * (np.sin(ph) + 0.5 * np.sin(2 * ph) + 0.25 * np.sin(3 * ph))).astype(np.float32) * 0.3


@pytest.mark.parametrize(("fmin", "fmax"), [(0.0, None), (150.0, 3000.0)])
def test_filterbank_matches_librosa(fmin, fmax):
    librosa = pytest.importorskip("librosa")
    fe = make_frontend(sr=SR, fmin=fmin, fmax=fmax)
    s = settings_of(fe)
    ref = librosa.filters.mel(sr=SR, n_fft=s["n_fft"], n_mels=s["n_mels"], fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(mel_filterbank(fe), ref, atol=1e-6)


def test_nnls_matches_scipy():
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    fb = mel_filterbank(make_frontend(sr=SR, n_mels=20))
    truth = rng.gamma(0.5, size=(fb.shape[1], 3))
    mel = fb @ truth
    est = mel_to_power(mel, fb, n_iter=300)
    assert (est >= 0).all()
    for k in range(3):
        ref, _ = nnls(fb.astype(np.float64), mel[:, k])
        ours = np.linalg.norm(fb @ est[:, k] - mel[:, k])
        best = np.linalg.norm(fb @ ref - mel[:, k])
        assert ours <= best + 0.02 * np.linalg.norm(mel[:, k])


def test_reconstruction_as_good_as_librosa():
    librosa = pytest.importorskip("librosa")
    fe = make_frontend(sr=SR)
    s = settings_of(fe)
    x = _signal()
    lm = fe(torch.from_numpy(x)).numpy()
    ours = logmel_to_audio(lm, frontend=fe, length=x.size, generator=torch.Generator().manual_seed(0))
    ref = librosa.feature.inverse.mel_to_audio(librosa.db_to_power(lm), sr=SR, n_fft=s["n_fft"],
                                               hop_length=s["hop_length"], pad_mode="constant", n_iter=32,
                                               length=x.size)
    sc_ours = spectral_convergence(lm, fe(torch.from_numpy(ours)).numpy())
    sc_ref = spectral_convergence(lm, fe(torch.from_numpy(ref.astype(np.float32))).numpy())
    assert ours.shape == x.shape and ours.dtype == np.float32
    assert sc_ours < 0.3
    assert sc_ours <= 1.1 * sc_ref


def test_griffin_lim_deterministic_and_checked():
    fe = make_frontend(sr=SR)
    lm = fe(torch.from_numpy(_signal(0.5))).numpy()
    a = logmel_to_audio(lm, frontend=fe, n_iter=4, generator=torch.Generator().manual_seed(3))
    b = logmel_to_audio(lm, frontend=fe, n_iter=4, generator=torch.Generator().manual_seed(3))
    c = logmel_to_audio(lm, frontend=fe, n_iter=4, generator=torch.Generator().manual_seed(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ParameterError, match="momentum=1.5"):
        griffin_lim(torch.ones(129, 5), n_fft=256, hop_length=80, momentum=1.5)
    with pytest.raises(ParameterError, match="n_fft // 2 \\+ 1 = 129"):
        griffin_lim(torch.ones(100, 5), n_fft=256, hop_length=80)
    with pytest.raises(ParameterError, match=f"n_mels={frontend_defaults(sr=SR)['n_mels']}"):
        mel_to_power(np.ones((3, 5)), mel_filterbank(fe))
