"""mix_at_snr, colored noise and noise banks against analytic definitions and the real noises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.banks import NoiseBank, list_bank_files
from roomtone.prepare.colored import COLORS, colored_noise
from roomtone.prepare.noise import active_mask, mix_at_snr


def _snr_np(sig, added, mask=None):
    sig, added = np.asarray(sig, np.float64), np.asarray(added, np.float64)
    if mask is not None:
        sig, added = sig[mask], added[mask]
    return 10 * np.log10(np.mean(sig**2) / np.mean(added**2))


def _speechlike(n, sr=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n)
    x[n // 4 : n // 2] = torch.sin(torch.arange(n // 4) * 2 * np.pi * 440 / sr) * 0.5
    x[n // 2 : 3 * n // 4] = torch.randn(n // 4, generator=g) * 0.05
    return x


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 30.0])
def test_whole_clip_snr_exact(snr):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8000, generator=g) * torch.tensor([[0.01], [0.3], [1.0]])
    n = colored_noise(length=8000, color="pink", batch=3, generator=g)
    y = mix_at_snr(x, n, snr)
    for i in range(3):
        assert abs(_snr_np(x[i], y[i] - x[i]) - snr) < 0.05


def test_active_part_snr_exact_and_differs_from_whole():
    x = _speechlike(16000)
    n = colored_noise(length=16000, color="white", seed=3)
    y = mix_at_snr(x, n, 10.0, active=True)
    mask = active_mask(x).numpy()
    assert 0.4 < mask.mean() < 0.6  # the tone and the quiet noise burst are active, the zeros are not
    assert not mask[: 16000 // 4 - 256].any()
    assert abs(_snr_np(x, y - x, mask) - 10.0) < 0.05
    assert abs(_snr_np(x, y - x) - 10.0) > 1.0  # over the whole clip the noise is relatively louder


def test_batched_per_example_snr_tensor_and_lengths():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4000, generator=g) * 0.2
    lengths = torch.tensor([4000, 3000, 1000, 2500])
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    noise = torch.randn(4, 4000, generator=g)
    snr = torch.tensor([0.0, 5.0, 10.0, 20.0])
    y = mix_at_snr(x, noise, snr, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        assert abs(_snr_np(x[i, :n], (y - x)[i, :n]) - snr[i].item()) < 0.05
        assert torch.all(y[i, n:] == 0)  # padding untouched
        # padding does not count: the same example alone, unpadded, gives the same mixture
        alone = mix_at_snr(x[i, :n], noise[i, :n], float(snr[i]))
        assert torch.allclose(alone, y[i, :n], atol=1e-6)


def test_absolute_mode_sets_noise_level_in_dbfs():
    x = torch.randn(2, 8000) * 0.1
    n = torch.randn(2, 8000)
    y, info = mix_at_snr(x, n, torch.tensor([-30.0, -50.0]), mode="absolute", return_info=True)
    for i, lvl in enumerate([-30.0, -50.0]):
        d = (y[i] - x[i]).double()
        assert abs(10 * np.log10(float(d.pow(2).mean())) - lvl) < 0.05
    assert info["mode_absolute"].all()


def test_silent_signal_documented_never_nan():
    x = torch.zeros(2, 4000)
    x[1] = torch.randn(4000) * 0.1
    n = torch.randn(2, 4000)
    y, info = mix_at_snr(x, n, 10.0, silent_dbfs=-40.0, return_info=True)
    assert torch.isfinite(y).all()
    assert info["mode_absolute"].tolist() == [True, False]
    assert abs(10 * np.log10(float(y[0].double().pow(2).mean())) + 40.0) < 0.05
    with pytest.raises(ParameterError, match=r"silent.*\[0\]"):
        mix_at_snr(x, n, 10.0, silent="error")
    # active-part mode on a silent signal behaves the same (empty mask)
    assert torch.isfinite(mix_at_snr(x, n, 10.0, active=True)).all()


def test_silent_noise_and_bad_inputs():
    x = torch.randn(2, 1000)
    n = torch.randn(2, 1000)
    n[1] = 0
    with pytest.raises(ParameterError, match="noise is silent"):
        mix_at_snr(x, n, 5.0)
    y, info = mix_at_snr(x, n, 5.0, silent_noise="keep", return_info=True)
    assert torch.equal(y[1], x[1]) and info["scale"][1] == 0
    with pytest.raises(ParameterError, match="crop or loop"):
        mix_at_snr(x, torch.randn(2, 999), 5.0)
    with pytest.raises(ParameterError, match="3 values for a batch of 2"):
        mix_at_snr(x, torch.randn(2, 1000), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ParameterError, match="mode="):
        mix_at_snr(x, torch.randn(2, 1000), 1.0, mode="loud")
    with pytest.raises(ParameterError, match="finite"):
        mix_at_snr(x, torch.randn(2, 1000), float("nan"))
    with pytest.raises(ParameterError, match="lengths"):
        mix_at_snr(x, torch.randn(2, 1000), 1.0, lengths=torch.tensor([0, 1000]))


@pytest.mark.parametrize("color", sorted(COLORS))
def test_colored_noise_spectral_slope(color):
    from scipy.signal import welch

    x = colored_noise(length=2**16, color=color, batch=4, seed=0).numpy()
    f, pxx = welch(x, fs=1.0, nperseg=4096)
    pxx = pxx.mean(0)
    sel = (f > 0.005) & (f < 0.4)
    slope = np.polyfit(np.log10(f[sel]), np.log10(pxx[sel]), 1)[0]
    assert abs(slope - COLORS[color]) < 0.1
    assert np.allclose(np.sqrt((x**2).mean(-1)), 1.0, atol=1e-4)


def test_colored_noise_seeded_and_explicit():
    a = colored_noise(length=1000, color="pink", seed=5)
    b = colored_noise(length=1000, color="pink", generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, colored_noise(length=1000, color="pink", seed=6))
    with pytest.raises(ParameterError, match="generator"):
        colored_noise(length=1000)
    with pytest.raises(ParameterError, match="color='grey'"):
        colored_noise(length=1000, color="grey", seed=0)


def test_noise_bank_real_train_split(noise_dir):
    files = list_bank_files(noise_dir, split="train")
    test_files = list_bank_files(noise_dir, split="test")
    assert files and test_files and not {f.path for f in files} & {f.path for f in test_files}
    assert all(f.row["split"] == "train" for f in files)
    bank = NoiseBank.from_path(noise_dir, sr=16000, split="train", max_files=3, max_seconds=2.0)
    assert len(bank) == 3 and bank.sr == 16000
    # resampled once: the 22 kHz files now have 2 s * 16000 samples
    assert all(abs(int(n) - 32000) <= 1 for n in bank.lengths)
    g = torch.Generator().manual_seed(0)
    idx, off = bank.draw(8, 16000, generator=g)
    crops = bank.crop(idx, off, 16000)
    assert crops.shape == (8, 16000)
    # a crop that reaches past the end loops to the start of the same clip
    long = bank.crop([0], [0], 40000)[0]
    n0 = int(bank.lengths[0])
    assert torch.equal(long[n0 : n0 + 100], long[:100])
    assert NoiseBank.from_path(noise_dir, sr=16000, split="train", max_files=3, max_seconds=2.0) is bank  # cached


def test_noise_bank_bad_inputs(tmp_path):
    import soundfile as sf

    with pytest.raises(DataError, match="does not exist"):
        list_bank_files(tmp_path / "missing")
    with pytest.raises(DataError, match="empty"):
        list_bank_files(tmp_path)
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(DataError, match="silent.*broken|broken.*silent"):
        NoiseBank.from_path(tmp_path, sr=8000, cache=False)
    sf.write(tmp_path / "ok.wav", np.random.default_rng(0).normal(size=800).astype(np.float32) * 0.1, 8000)
    bank = NoiseBank.from_path(tmp_path, sr=8000, cache=False)
    assert len(bank) == 1 and len(bank.skipped) == 2
    csv = tmp_path / "bank.csv"
    csv.write_text("file,split\nok.wav,test\n")
    with pytest.raises(DataError, match="split == 'train'"):
        list_bank_files(csv, split="train")
    assert len(list_bank_files(csv, split="test")) == 1
