"""convolve_rir, RT60/DRR measures and RIR banks (real and simulated)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.roombank import RoomBank
from roomtone.prepare.rooms import convolve_rir, measure_drr, measure_rt60


def _decay_rir(rt60, sr=16000, seconds=1.0, delay=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * sr)
    t = torch.arange(n) / sr
    h = torch.randn(n, generator=g) * torch.exp(-3 * math.log(10) * t / rt60) * 0.3
    h = torch.cat([torch.zeros(delay), h])
    h[delay] = 1.0
    return h


@pytest.mark.parametrize("k", [0, 37])
def test_delta_rir_is_identity(k):
    x = torch.randn(3, 4000)
    h = torch.zeros(200)
    h[k] = 0.5
    for norm in ("energy", "direct"):
        assert torch.allclose(convolve_rir(x, h, normalize=norm), x, atol=1e-5)
    assert torch.allclose(convolve_rir(x, h, normalize="none"), 0.5 * x, atol=1e-5)


def test_direct_path_alignment_and_reference():
    from scipy.signal import fftconvolve

    h = _decay_rir(0.4, delay=250)
    x = torch.zeros(8000)
    x[3000] = 1.0
    y = convolve_rir(x, h, normalize="direct")
    assert int(y.abs().argmax()) == 3000 and abs(float(y[3000]) - 1.0) < 1e-4
    assert y.shape == x.shape
    sig = torch.randn(8000).numpy()
    ref = fftconvolve(sig, h.numpy())[250 : 250 + 8000]
    out = convolve_rir(torch.from_numpy(sig), h, normalize="none").numpy()
    assert np.allclose(out, ref, atol=1e-4)
    causal = convolve_rir(torch.from_numpy(sig), h, normalize="none", align="none").numpy()
    assert np.allclose(causal, fftconvolve(sig, h.numpy())[:8000], atol=1e-4)


def test_batched_equals_per_example_and_wet_dry():
    hs = torch.stack([_decay_rir(r, seconds=0.3, delay=d, seed=i)[:4800] for i, (r, d) in enumerate([(0.2, 10), (0.5, 90)])])
    x = torch.randn(2, 3000)
    y = convolve_rir(x, hs, wet=torch.tensor([1.0, 0.3]))
    y0 = convolve_rir(x[0], hs[0])
    y1 = 0.3 * convolve_rir(x[1], hs[1]) + 0.7 * x[1]
    assert torch.allclose(y[0], y0, atol=1e-5) and torch.allclose(y[1], y1, atol=1e-5)
    # energy normalisation: a broadband input keeps about its power
    assert abs(float(y0.pow(2).mean() / x[0].pow(2).mean()) - 1.0) < 0.2


def test_convolve_bad_inputs():
    x = torch.randn(2, 100)
    with pytest.raises(ParameterError, match="no energy"):
        convolve_rir(x, torch.zeros(50))
    with pytest.raises(ParameterError, match="batch 3"):
        convolve_rir(x, torch.randn(3, 50))
    with pytest.raises(ParameterError, match="normalize"):
        convolve_rir(x, torch.randn(50), normalize="loud")
    with pytest.raises(ParameterError, match="wet"):
        convolve_rir(x, torch.randn(50), wet=1.5)
    with pytest.raises(ParameterError, match="non-finite"):
        convolve_rir(x, torch.full((50,), float("nan")))


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_measure_rt60_and_drr(rt60):
    h = _decay_rir(rt60, seconds=2 * rt60 + 0.2)
    assert abs(measure_rt60(h, sr=16000) - rt60) < 0.1 * rt60
    d = torch.zeros(1000)
    d[10] = 1.0
    d[500] = 0.1  # one reflection, 20 dB down
    assert abs(measure_drr(d, sr=16000) - 20.0) < 1e-6
    with pytest.raises(ParameterError, match="no energy"):
        measure_rt60(torch.zeros(100), sr=16000)
    # a measured RIR ends in the noise floor of the recording: the estimate must not follow it
    g = torch.Generator().manual_seed(9)
    noisy = _decay_rir(rt60, seconds=3.0) + torch.randn(100 + 48000, generator=g) * 3e-3
    assert abs(measure_rt60(noisy, sr=16000) - rt60) < 0.1 * rt60


def test_reverberate_keeps_direct_path_aligned_with_real_rirs(rir_dir):
    from roomtone.prepare.transforms import Reverberate

    bank = RoomBank.from_path(rir_dir, sr=16000, split="train", max_seconds=1.0)
    x = torch.zeros(len(bank), 16000)
    x[:, 4000] = 1.0
    t = Reverberate(bank, sr=16000, normalize="direct")
    y = t.replay(x, [{"room": n, "wet": 1.0} for n in bank.names])
    assert (y.abs().argmax(dim=1) == 4000).all() and torch.allclose(y[:, 4000], torch.ones(len(bank)), atol=1e-4)
    assert (y[:, :3990].abs().max(dim=1).values < 0.5).all()  # nothing big arrives before the direct sound


def test_real_room_bank_train_split(rir_dir):
    bank = RoomBank.from_path(rir_dir, sr=16000, split="train", max_seconds=1.0)
    import csv

    rows = list(csv.DictReader(open(rir_dir / "files.csv")))
    assert sorted(bank.names) == sorted(r["file"] for r in rows if r["split"] == "train")
    assert bank.data.shape[1] <= 16000 and bank.data.shape[0] == len(bank)
    # the direct-path peak sits pre_ms (2 ms) into every entry
    assert all(int(bank.data[i].abs().argmax()) == int(bank.peaks[i]) <= 32 for i in range(len(bank)))
    assert all(0.05 < r < 10 for r in bank.rt60 if not math.isnan(r))
    short = bank.filter(rt60=(0.0, 0.5))
    assert 0 < len(short) < len(bank) and all(r <= 0.5 for r in short.rt60)
    with pytest.raises(ParameterError, match="reversed"):
        bank.filter(rt60=(1.0, 0.5))
    with pytest.raises(DataError, match="no RIR has rt60"):
        bank.filter(rt60=(50.0, 60.0))
    # Reverberate asks the bank for a target range of measured DRR (and RT60): only those rooms are drawn
    from roomtone.prepare.transforms import Reverberate

    mid = sorted(bank.drr)[len(bank) // 2]
    t = Reverberate(bank, sr=16000, min_drr_db=mid)
    assert 0 < len(t.bank) < len(bank) and all(d >= mid for d in t.bank.drr)
    t(torch.randn(4, 8000) * 0.1, generator=torch.Generator().manual_seed(0))
    assert all(p["drr_db"] >= mid for p in t.last_params)
    with pytest.raises(ParameterError, match="reversed"):
        Reverberate(bank, sr=16000, min_drr_db=5.0, max_drr_db=-5.0)


def test_room_bank_skips_silent_and_errors(tmp_path):
    import soundfile as sf

    with pytest.raises(DataError, match="does not exist"):
        RoomBank.from_path(tmp_path / "none", sr=16000)
    sf.write(tmp_path / "zero.wav", np.zeros(1000, np.float32), 16000)
    with pytest.raises(DataError, match="no energy"):
        RoomBank.from_path(tmp_path, sr=16000)
    h = _decay_rir(0.3, sr=48000, seconds=0.5).numpy()
    sf.write(tmp_path / "stereo.wav", np.stack([h, 0.5 * h], 1), 48000)
    bank = RoomBank.from_path(tmp_path, sr=16000, channel=3)  # more than it has: the last channel
    assert len(bank) == 1 and bank.meta[0]["channel"] == 1 and len(bank.skipped) == 1
    assert abs(bank.rt60[0] - 0.3) < 0.05


@pytest.mark.slow
def test_simulated_bank_built_once_and_cached(tmp_path):
    kw = dict(sr=8000, n_rooms=3, rt60=(0.15, 0.3), size=((3.0, 4.0), (3.0, 4.0), (2.5, 2.8)), seed=1,
              cache_dir=tmp_path, progress=False)
    bank = RoomBank.simulated(**kw)
    assert len(bank) == 3 and bank.cache_path.exists()
    for r, m in zip(bank.rt60, bank.meta, strict=True):
        assert abs(r - m["rt60_target_s"]) < 0.1 + 0.35 * m["rt60_target_s"]
        assert m["distance_m"] >= 0.5
    again = RoomBank.simulated(**kw)
    assert torch.equal(again.data, bank.data) and again.rt60 == bank.rt60 and again.names == bank.names
    other = RoomBank.simulated(**{**kw, "seed": 2})
    assert other.cache_path != bank.cache_path and not torch.equal(other.data[:, :100], bank.data[:, :100])
    with pytest.raises(ParameterError, match="rt60"):
        RoomBank.simulated(**{**kw, "rt60": (0.5, 0.2)})
