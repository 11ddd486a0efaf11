"""Feature layers vs librosa (float64, same explicit settings) and the padding/precision contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.features import (
    MFCC,
    AmplitudeToDB,
    Delta,
    MelSpectrogram,
    PowerToDB,
    Spectrogram,
    log_mel,
    mel_filterbank,
    mel_frequencies,
)

librosa = pytest.importorskip("librosa")

SR = 22050
REL_POWER = 1e-5  # issue bar: relative error on power (mel) spectrograms
DB_TOL = 1e-3  # issue bar: max abs difference in dB


def _signal(seconds=0.7, sr=SR, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    y *= np.linspace(0.1, 1.0, t.size)  # not stationary, so every frame differs
    return y


def _rel(out, ref):
    """Max error relative to the spectrogram's peak, and median elementwise relative error."""
    return np.abs(out - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("impl", ["fft", "conv"])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_spectrogram_matches_librosa(impl, center, power):
    y = _signal()
    layer = Spectrogram(512, 128, 400, center=center, power=power, stft_impl=impl).double()
    ref = np.abs(librosa.stft(y, n_fft=512, hop_length=128, win_length=400, center=center)) ** power
    out = layer(torch.from_numpy(y)).numpy()
    assert out.shape == ref.shape
    assert _rel(out, ref) <= REL_POWER


def test_spectrogram_reflect_pad_matches_librosa():
    y = _signal()
    out = Spectrogram(512, 160, pad_mode="reflect").double()(torch.from_numpy(y)).numpy()
    ref = np.abs(librosa.stft(y, n_fft=512, hop_length=160, pad_mode="reflect")) ** 2
    assert _rel(out, ref) <= REL_POWER


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize("center", [True, False])
def test_mel_and_log_mel_match_librosa(htk, norm, center):
    y = _signal()
    kw = dict(sr=SR, n_fft=1024, hop_length=256, n_mels=64, fmin=40.0, fmax=9000.0, htk=htk, norm=norm, center=center)
    ref = librosa.feature.melspectrogram(y=y, **kw)
    for impl in ("fft", "conv"):
        mel = MelSpectrogram(**kw, stft_impl=impl).double()
        out = mel(torch.from_numpy(y)).numpy()
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= REL_POWER * ref.max()
        # relative error on every bin carrying energy above -100 dB of the peak
        big = ref > 1e-10 * ref.max()
        assert np.median(np.abs(out[big] - ref[big]) / ref[big]) <= REL_POWER
        lm = log_mel(**kw, top_db=80.0, stft_impl=impl).double()
        db_ref = librosa.power_to_db(ref, top_db=80.0)
        assert np.abs(lm(torch.from_numpy(y)).numpy() - db_ref).max() <= DB_TOL


def test_filterbank_and_mel_frequencies_equal_librosa():
    for htk in (False, True):
        for norm in ("slaney", None):
            ours = mel_filterbank(sr=16000, n_fft=512, n_mels=40, fmin=20, fmax=7600, htk=htk, norm=norm)
            ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20, fmax=7600, htk=htk, norm=norm,
                                      dtype=np.float64)
            np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(mel_frequencies(n_mels=10, fmin=50, fmax=8000, htk=htk),
                                   librosa.mel_frequencies(n_mels=10, fmin=50, fmax=8000, htk=htk), rtol=1e-12)
    m = MelSpectrogram(16000, 512, n_mels=40, fmin=20, fmax=7600)
    assert m.center_freqs.shape == (40,) and 20 < m.center_freqs[0] < m.center_freqs[-1] < 7600


@pytest.mark.parametrize("top_db", [None, 80.0, 40.0])
@pytest.mark.parametrize("ref", [1.0, "max"])
def test_power_to_db_matches_librosa(top_db, ref):
    spec = np.abs(librosa.stft(_signal(), n_fft=512)) ** 2
    out = PowerToDB(ref=ref, top_db=top_db).double()(torch.from_numpy(spec)).numpy()
    expect = librosa.power_to_db(spec, ref=np.max if ref == "max" else ref, top_db=top_db)
    assert np.abs(out - expect).max() <= DB_TOL
    mag = np.sqrt(spec)
    out = AmplitudeToDB(ref=ref, top_db=top_db)(torch.from_numpy(mag)).numpy()
    expect = librosa.amplitude_to_db(mag, ref=np.max if ref == "max" else ref, top_db=top_db)
    assert np.abs(out - expect).max() <= DB_TOL


def test_top_db_is_per_example_not_per_batch():
    loud, quiet = _signal(seed=1), 1e-4 * _signal(seed=2)
    lm = log_mel(sr=SR, n_fft=1024, hop_length=512, n_mels=64, top_db=80.0).double()
    batch = lm(torch.from_numpy(np.stack([loud, quiet])))
    for i, y in enumerate((loud, quiet)):
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=512, n_mels=64),
                                  top_db=80.0)
        assert np.abs(batch[i].numpy() - ref).max() <= DB_TOL
    # the quiet clip keeps its own 80 dB range (a batch-max clamp would flatten it)
    assert float(batch[1].max() - batch[1].min()) > 30.0
    batch_max_floor = float(batch.max()) - 80.0
    assert float(batch[1].min()) < batch_max_floor


def test_log_mel_contract_attributes_and_band():
    lm = log_mel(sr=16000, n_fft=512, hop_length=160, n_mels=40, fmin=300.0, fmax=4000.0)
    for name, value in dict(sr=16000, n_fft=512, hop_length=160, win_length=512, n_mels=40, fmin=300.0,
                            fmax=4000.0).items():
        assert getattr(lm, name) == value
    lo, hi = lm.mel.spectrogram.bins
    assert lo > 0 and hi < 257  # bins outside the band are never computed
    assert lm(torch.zeros(3, 16000)).shape == (3, 40, 101)
    assert isinstance(lm, torch.nn.Module)


def test_mfcc_matches_librosa():
    y = _signal()
    for kw in (dict(n_mfcc=20, n_fft=2048, hop_length=512), dict(n_mfcc=13, n_fft=512, hop_length=160, n_mels=40,
                                                                   fmax=8000.0, lifter=22)):
        ref = librosa.feature.mfcc(y=y, sr=SR, **kw)
        out = MFCC(SR, **kw).double()(torch.from_numpy(y)).numpy()
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-3


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("width", [9, 5])
def test_delta_matches_librosa(order, width):
    data = librosa.feature.mfcc(y=_signal(), sr=SR)
    out = Delta(width, order).double()(torch.from_numpy(data)).numpy()
    np.testing.assert_allclose(out, librosa.feature.delta(data, width=width, order=order), atol=1e-6)


def test_delta_lengths_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 30)), rng.standard_normal((5, 17))
    batch = torch.zeros(2, 5, 30, dtype=torch.float64)
    batch[0], batch[1, :, :17] = torch.from_numpy(a), torch.from_numpy(b)
    out, n = Delta().double()(batch, torch.tensor([30, 17]))
    np.testing.assert_allclose(out[1, :, :17].numpy(), librosa.feature.delta(b), atol=1e-6)
    np.testing.assert_allclose(out[0].numpy(), librosa.feature.delta(a), atol=1e-6)
    assert (out[1, :, 17:] == 0).all() and n.tolist() == [30, 17]


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("center", [True, False])
def test_padded_batch_equals_one_at_a_time(pad_mode, center):
    sizes = [16000, 9000, 4100]
    clips = [torch.from_numpy(_signal(seconds=n / 16000, sr=16000, seed=i)) for i, n in enumerate(sizes)]
    batch = torch.full((3, max(sizes)), 0.5, dtype=torch.float64)  # non-zero padding must not leak
    for i, c in enumerate(clips):
        batch[i, : c.numel()] = c
    lengths = torch.tensor(sizes)
    for layer in (log_mel(sr=16000, n_fft=512, hop_length=160, n_mels=40, center=center, pad_mode=pad_mode),
                  MFCC(16000, 13, 512, 160, n_mels=40, center=center, pad_mode=pad_mode)):
        layer = layer.double()
        out, n_frames = layer(batch, lengths)
        for i, c in enumerate(clips):
            single = layer(c)
            assert int(n_frames[i]) == single.shape[-1]
            torch.testing.assert_close(out[i, :, : single.shape[-1]], single, atol=1e-9, rtol=0)
        # padded frames hold the floor (dB) or zero (MFCC), never data from the padding
        pad_part = out[2, :, int(n_frames[2]):]
        assert torch.allclose(pad_part, pad_part.flatten()[0].expand_as(pad_part))


def test_lengths_frames_and_errors():
    spec = Spectrogram(400, 160)
    x = torch.randn(2, 1600)
    _, n = spec(x, torch.tensor([1600, 800]))
    assert n.tolist() == [11, 6]
    with pytest.raises(ParameterError, match="lengths"):
        spec(x, torch.tensor([1601, 3]))
    with pytest.raises(ParameterError, match="lengths"):
        spec(x, torch.tensor([3]))


def test_leading_dims_and_batch_equals_single():
    lm = log_mel(sr=SR, n_fft=512, hop_length=256, n_mels=32)
    x = torch.randn(2, 3, 5000)
    out = lm(x)
    assert out.shape == (2, 3, 32, 1 + 5000 // 256)
    torch.testing.assert_close(out[1, 2], lm(x[1, 2]), atol=1e-4, rtol=1e-5)


def test_gradients_flow_and_trainable_filterbank():
    x = torch.randn(2, 4000, dtype=torch.float64, requires_grad=True)
    for impl in ("fft", "conv"):
        lm = log_mel(sr=16000, n_fft=512, hop_length=128, n_mels=32, trainable=True, stft_impl=impl).double()
        lm(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        assert lm.mel.fb.grad is not None and lm.mel.fb.grad.abs().sum() > 0
        x.grad = None
    assert any(p.requires_grad for p in lm.parameters())
    assert not list(log_mel(sr=16000).parameters())


def test_float32_close_to_float64():
    y = _signal()
    lm = log_mel(sr=SR, n_fft=1024, hop_length=512, n_mels=64)
    out32 = lm(torch.from_numpy(y).float())
    assert out32.dtype == torch.float32
    out64 = lm.double()(torch.from_numpy(y))
    assert out64.dtype == torch.float64
    assert (out32.double() - out64).abs().max() < 1e-2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_and_half_inputs_stay_finite(dtype):
    x = torch.randn(2, 8000) * 30  # loud: power overflows float16 if computed in half precision
    lm = log_mel(sr=16000, n_fft=512, hop_length=160, n_mels=40)
    ref = lm(x)
    with torch.autocast("cpu", dtype=dtype):
        out = lm(x)
        mf = MFCC(16000, 13, 512, 160, n_mels=40)(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all() and torch.isfinite(mf).all()
    torch.testing.assert_close(out, ref)
    half = lm(x.to(dtype))
    assert torch.isfinite(half).all() and half.dtype == torch.float32


def test_parameter_errors_repeat_the_value():
    with pytest.raises(ParameterError, match="hop_length=0"):
        Spectrogram(512, 0)
    with pytest.raises(ParameterError, match="win_length=600"):
        Spectrogram(512, 128, 600)
    with pytest.raises(ParameterError, match="fmax=9000"):
        MelSpectrogram(16000, 512, fmax=9000)
    with pytest.raises(ParameterError, match="norm='l2'"):
        MelSpectrogram(16000, 512, norm="l2")
    with pytest.raises(ParameterError, match="top_db=-1"):
        PowerToDB(top_db=-1)
    with pytest.raises(ParameterError, match="width=4"):
        Delta(width=4)
    with pytest.raises(ParameterError, match="stft_impl='gpu'"):
        Spectrogram(512, stft_impl="gpu")
    with pytest.raises(ParameterError, match="n_fft=512"):
        Spectrogram(512, center=False)(torch.zeros(100))


def test_log1p_and_log_compression():
    spec = torch.rand(2, 8, 10)
    torch.testing.assert_close(PowerToDB(compression="log1p")(spec), torch.log1p(spec))
    torch.testing.assert_close(PowerToDB(compression="log", amin=1e-6)(spec), torch.log(spec.clamp(min=1e-6)))
    with pytest.raises(ParameterError, match="compression"):
        PowerToDB(compression="log1p", top_db=80)


@pytest.mark.parametrize("top_db", [None, 60.0])
@pytest.mark.parametrize("ref", [1.0, "max"])
def test_power_to_db_lengths_ignore_padding(top_db, ref):
    rng = np.random.default_rng(5)
    a = torch.from_numpy(rng.random((16, 30)) + 1e-3)
    padded = torch.cat([a, torch.full((16, 10), 1e6, dtype=torch.float64)], dim=-1)[None]  # loud padding
    layer = PowerToDB(ref=ref, top_db=top_db).double()
    out, n = layer(padded, torch.tensor([30]))
    torch.testing.assert_close(out[0, :, :30], layer(a), atol=1e-9, rtol=0)
    tail = out[0, :, 30:]
    assert torch.all(tail == tail.min()) and float(tail.min()) <= float(out[0, :, :30].min()) + 1e-9


def test_cpu_chunking_gives_the_same_numbers(monkeypatch):
    import roomtone.features.layers as layers

    x = torch.randn(9, 3000, dtype=torch.float64)
    lengths = torch.tensor([3000, 2000, 1000, 3000, 500, 2999, 1234, 3000, 2500])
    lm, mf = log_mel(sr=16000, n_fft=256, hop_length=64, n_mels=20).double(), MFCC(16000, 8, 256, 64, n_mels=20).double()
    whole = [lm(x), lm(x, lengths), mf(x)]
    monkeypatch.setattr(layers, "CPU_CHUNK_BYTES", 1)  # one example per slice
    sliced = [lm(x), lm(x, lengths), mf(x)]
    torch.testing.assert_close(sliced[0], whole[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(sliced[1][0], whole[1][0], rtol=0, atol=1e-12)
    assert torch.equal(sliced[1][1], whole[1][1])
    torch.testing.assert_close(sliced[2], whole[2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_mels,n_fft", [(128, 1024), (64, 512), (40, 512), (80, 400)])
def test_mel_band_blocks_cover_every_weight_and_match_the_dense_product(n_mels, n_fft):
    """The block-by-block mel product skips only zeros of the filterbank: same numbers as one dense GEMM."""
    from roomtone.features.layers import MelSpectrogram, band_blocks

    mel = MelSpectrogram(16000, n_fft, n_fft // 4, n_mels=n_mels)
    fb = mel.fb.numpy()
    assert mel.blocks and mel.blocks == band_blocks(fb)
    covered = np.zeros_like(fb, dtype=bool)
    for a, b, lo, hi in mel.blocks:
        covered[a:b, lo:hi] = True
    assert not (fb != 0)[~covered].any() and sum(b - a for a, b, _, _ in mel.blocks) == n_mels
    x = torch.randn(3, 16000, generator=torch.Generator().manual_seed(0))
    blocked = mel(x)
    mel.blocks = ()
    dense = mel(x)
    assert torch.allclose(blocked, dense, rtol=1e-5, atol=1e-6 * float(dense.max()))
    assert band_blocks(np.ones((64, 257))) == ()  # dense weights: no blocks
