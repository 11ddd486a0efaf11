"""Microphone simulation: band-pass attenuation, response curves, clipping, bit depth, codecs, presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.prepare.microphones import (
    PRESETS,
    apply_magnitude,
    bandpass_magnitude,
    clip,
    codec_roundtrip,
    codec_support,
    curve_magnitude,
    design_bandpass,
    quantize,
    simulate_microphone,
)

SR = 16000


def _tone(f, n=SR):
    return torch.sin(2 * np.pi * f * torch.arange(n) / SR)


def _gain_db(f, mag_fn):
    x = _tone(f)
    y = apply_magnitude(x, mag_fn, sr=SR)
    core = slice(2000, SR - 2000)  # away from the edges
    return 20 * np.log10(float(y[core].pow(2).mean().sqrt()) / float(x[core].pow(2).mean().sqrt()))


@pytest.mark.parametrize("fmin,fmax", [(300.0, 3400.0), (100.0, 2000.0)])
def test_bandpass_30db_one_octave_outside(fmin, fmax):
    def mag(n):
        return bandpass_magnitude(sr=SR, n_fft=n, fmin=fmin, fmax=fmax)

    assert _gain_db(fmin / 2, mag) <= -30.0
    assert _gain_db(fmax * 2, mag) <= -30.0
    assert abs(_gain_db((fmin * fmax) ** 0.5, mag)) < 0.5
    # agrees with scipy's own filtering of the same SOS in magnitude (sosfiltfilt = |H|^2)
    from scipy.signal import sosfilt

    sos = design_bandpass(sr=SR, fmin=fmin, fmax=fmax)
    for f in (fmin / 2, fmin * 1.5, fmax * 0.8):
        ref = sosfilt(sos, _tone(f, 4 * SR).numpy())[2 * SR :]
        ref_db = 20 * np.log10(np.sqrt(np.mean(ref**2)) / np.sqrt(0.5))
        assert abs(_gain_db(f, mag) - ref_db) < 0.3


def test_design_errors():
    with pytest.raises(ParameterError, match="fmin=5000"):
        design_bandpass(sr=SR, fmin=5000.0, fmax=3000.0)
    with pytest.raises(ParameterError, match="fmax=9000"):
        design_bandpass(sr=SR, fmin=100.0, fmax=9000.0)


def test_curve_interpolates_in_db_over_log_frequency():
    pts = [(100, -20), (1000, 0), (4000, 6)]
    n = 16000
    mag = curve_magnitude(pts, sr=SR, n_fft=n)
    f = np.fft.rfftfreq(n, 1 / SR)

    def at(hz):
        return 20 * np.log10(mag[np.argmin(abs(f - hz))])

    assert abs(at(1000) - 0) < 1e-6 and abs(at(4000) - 6) < 1e-6
    assert abs(at(2000) - 3) < 1e-6  # halfway in octaves between 1000 and 4000
    assert abs(at(50) + 20) < 1e-6 and abs(at(7000) - 6) < 1e-6  # flat beyond the ends
    with pytest.raises(ParameterError, match="two"):
        curve_magnitude([(100, 0)], sr=SR, n_fft=n)


def test_clip_quantize():
    x = torch.linspace(-2, 2, 101)
    assert clip(x, threshold=0.5).abs().max() == 0.5
    s = clip(x, threshold=0.5, mode="soft")
    assert s.abs().max() < 0.5 and torch.allclose(s[50:52], x[50:52], atol=1e-3)
    q = quantize(torch.tensor([0.0, 0.26, -1.0, 1.0]), bits=3)
    assert torch.equal(q, torch.tensor([0.0, 0.25, -1.0, 0.75]))
    with pytest.raises(ParameterError, match="bits"):
        quantize(x, bits=1)
    with pytest.raises(ParameterError, match="mode"):
        clip(x, mode="fuzz")


@pytest.mark.parametrize("codec", ["mp3", "vorbis", "opus"])
def test_codec_roundtrip_keeps_length_and_alignment(codec):
    ok, why = codec_support(codec)
    if not ok:
        pytest.skip(why)
    x = (_tone(440) * 0.5).unsqueeze(0).repeat(2, 1)
    y = codec_roundtrip(x, sr=SR, codec=codec, quality=0.8)
    assert y.shape == x.shape
    c = np.corrcoef(x[0, 2000:-2000].numpy(), y[0, 2000:-2000].numpy())[0, 1]
    assert c > 0.95  # aligned (no encoder delay left) and close


def test_codec_unknown():
    with pytest.raises(ParameterError, match="not available"):
        codec_roundtrip(torch.zeros(100), sr=SR, codec="aac")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_run_and_shape(name):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8000, generator=g) * 0.1
    y = simulate_microphone(x, sr=SR, mic=name, noise=torch.randn(2, 8000, generator=g))
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(x, y)
    p = PRESETS[name]
    if p.fmin:  # the low end is cut
        assert _gain_db(p.fmin / 2, lambda n: p.magnitude(sr=SR, n_fft=n)) < -6
    with pytest.raises(ParameterError, match="not a known preset"):
        simulate_microphone(x, sr=SR, mic="tin-can")


def test_codec_through_transform_recorded_or_skipped(monkeypatch):
    from roomtone.prepare import microphones
    from roomtone.prepare.transforms import SimulateMicrophone

    x = (_tone(300, 8000) * 0.3).unsqueeze(0).repeat(2, 1)
    ok, why = codec_support("vorbis")
    t = SimulateMicrophone("headset", sr=SR, codec="vorbis")
    y = t(x, generator=torch.Generator().manual_seed(0))
    if ok:
        assert all(p["codec"] == "vorbis" for p in t.last_params)
        assert torch.equal(t.replay(x, t.last_params), y)
    # a libsndfile without the codec: processed without it, and the reason recorded
    monkeypatch.setattr(microphones, "codec_support", lambda c: (False, "no encoder in this build"))
    import roomtone.prepare.transforms.simulate_microphone as sm

    monkeypatch.setattr(sm, "codec_support", lambda c: (False, "no encoder in this build"))
    t = SimulateMicrophone("voip", sr=SR)
    y = t(x, generator=torch.Generator().manual_seed(0))
    assert all("no encoder" in p["codec_skipped"] and "codec" not in p for p in t.last_params)
    assert torch.isfinite(y).all()
    with pytest.raises(ParameterError, match="codec='aac'"):
        SimulateMicrophone("phone", sr=SR, codec="aac")


def test_band_limit_matches_a_real_resampling_roundtrip():
    from roomtone.prepare.microphones import band_limit_magnitude, resample_roundtrip

    for f, kept in ((1000, True), (5000, False)):
        x = _tone(f) * 0.5
        soxr_y = resample_roundtrip(x, sr=SR, target_sr=8000)
        assert soxr_y.shape == x.shape
        fft_db = _gain_db(f, lambda n: band_limit_magnitude(sr=SR, n_fft=n, cutoff_hz=4000.0))
        core = slice(2000, SR - 2000)
        soxr_db = 20 * np.log10(float(soxr_y[core].pow(2).mean().sqrt()) / float(x[core].pow(2).mean().sqrt()))
        if kept:
            assert abs(fft_db) < 0.1 and abs(soxr_db) < 0.1
        else:
            assert fft_db < -60 and soxr_db < -60
    with pytest.raises(ParameterError, match="target_sr"):
        resample_roundtrip(torch.zeros(100), sr=SR, target_sr=32000)
