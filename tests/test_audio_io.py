"""roomtone.audio: round trips for every libsndfile format we promise, and every AudioError with a crafted file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from roomtone.audio import info, load, resample_array, save
from roomtone.errors import AudioError, ParameterError

SR = 16000


def _tone(n=SR // 2, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    y = np.stack([0.5 * np.sin(2 * np.pi * (300 + 200 * c) * t) + 0.01 * rng.standard_normal(n)
                  for c in range(channels)])
    return y.astype(np.float32) if channels > 1 else y[0].astype(np.float32)


# quantisation step of each integer subtype: the round trip must be within one step
@pytest.mark.parametrize(("ext", "subtype", "tol"), [
    ("wav", "PCM_U8", 2 / 2**8), ("wav", "PCM_16", 2 / 2**16), ("wav", "PCM_24", 2 / 2**24),
    ("wav", "PCM_32", 1e-7), ("wav", "FLOAT", 0.0), ("wav", "DOUBLE", 0.0),
    ("flac", "PCM_16", 2 / 2**16), ("flac", "PCM_24", 2 / 2**24),
])
def test_lossless_round_trips(tmp_path, ext, subtype, tol):
    y = _tone()
    path = save(tmp_path / f"x.{ext}", y, SR, subtype=subtype)
    meta = info(path)
    assert (meta.sr, meta.channels, meta.frames, meta.subtype) == (SR, 1, y.size, subtype)
    assert meta.duration == pytest.approx(0.5)
    assert meta.bit_depth == {"PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}[subtype]
    audio, sr = load(path)
    assert sr == SR and audio.dtype == torch.float32 and audio.shape == (y.size,)
    assert float((audio - torch.from_numpy(y)).abs().max()) <= tol + 1e-9
    assert float(audio.abs().max()) <= 1.0


def test_lossy_ogg_vorbis_round_trip(tmp_path):
    y = _tone(SR)
    path = save(tmp_path / "x.ogg", y, SR, subtype="VORBIS")
    audio, sr = load(path)
    assert sr == SR and audio.shape == (y.size,)
    err = audio.numpy() - y
    snr = 10 * np.log10(np.sum(y**2) / np.sum(err**2))
    assert snr > 20  # Vorbis is lossy; a tone survives with a high SNR


def test_channels_mono_pick_offset_duration(tmp_path):
    y = _tone(SR, channels=3)
    path = save(tmp_path / "multi.wav", y, SR, subtype="FLOAT")
    both, _ = load(path, mono=False)
    assert both.shape == (3, SR)
    mono, _ = load(path)
    torch.testing.assert_close(mono, torch.from_numpy(y.mean(axis=0)))
    ch2, _ = load(path, channel=2)
    torch.testing.assert_close(ch2, torch.from_numpy(y[2]))
    last, _ = load(path, channel=-1)
    torch.testing.assert_close(last, ch2)
    part, _ = load(path, channel=0, offset=0.25, duration=0.5)
    torch.testing.assert_close(part, torch.from_numpy(y[0, SR // 4: SR // 4 + SR // 2]))


def test_resampling_on_load_uses_soxr(tmp_path):
    import soxr

    y = _tone(SR)
    path = save(tmp_path / "x.wav", y, SR, subtype="FLOAT")
    audio, sr = load(path, sr=8000)
    assert sr == 8000 and audio.shape == (8000,)
    np.testing.assert_allclose(audio.numpy(), soxr.resample(y, SR, 8000, quality="HQ"), atol=1e-6)
    two = resample_array(np.stack([y, y]), orig_sr=SR, target_sr=22050)
    assert two.shape[0] == 2 and abs(two.shape[1] - 22050) <= 1
    np.testing.assert_allclose(two[1], soxr.resample(y, SR, 22050, quality="HQ"), atol=1e-6)


def test_save_refuses_bad_input(tmp_path):
    with pytest.raises(ParameterError, match="non-finite"):
        save(tmp_path / "nan.wav", np.array([0.0, np.nan], dtype=np.float32), SR)
    with pytest.raises(ParameterError, match="sr=0"):
        save(tmp_path / "x.wav", np.zeros(10), 0)
    save(tmp_path / "x.wav", np.zeros(10), SR)
    with pytest.raises(AudioError, match="overwrite"):
        save(tmp_path / "x.wav", np.zeros(10), SR, overwrite=False)
    assert not list(tmp_path.glob(".*partial*"))  # no half-written leftovers


# ---- every AudioError case with a crafted file ----------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="does not exist") as exc:
        load(tmp_path / "nope.wav")
    assert "nope.wav" in str(exc.value)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        load(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty") as exc:
        load(path)
    assert "empty.wav" in str(exc.value)


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), SR, subtype="PCM_16")
    assert path.stat().st_size > 0  # a valid header, no samples
    with pytest.raises(AudioError, match="zero-length"):
        load(path)


def test_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is a text file, not a recording\n" * 20)
    with pytest.raises(AudioError, match="not a readable audio file") as exc:
        load(path)
    assert "notes.wav" in str(exc.value)
    with pytest.raises(AudioError, match="not a readable audio file"):
        info(path)


def test_truncated_wav(tmp_path):
    full = save(tmp_path / "full.wav", _tone(), SR, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated") as exc:
        load(cut)
    assert "cut.wav" in str(exc.value)


@pytest.mark.parametrize("ext", ["flac", "ogg"])
def test_truncated_or_corrupt_compressed(tmp_path, ext):
    full = save(tmp_path / f"full.{ext}", _tone(SR), SR)
    data = bytearray(full.read_bytes())
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(AudioError, match="cut") as exc:
        load(cut)
    assert any(w in str(exc.value) for w in ("truncated", "corrupt", "malformed", "zero-length"))
    bad = tmp_path / f"bad.{ext}"
    start = len(data) // 3
    data[start: start + 2000] = bytes((b * 7 + 13) % 256 for b in data[start: start + 2000])
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="bad"):
        load(bad)


def test_nan_float_wav(tmp_path):
    y = _tone()
    y[100] = np.nan
    y[200] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(str(path), y, SR, subtype="FLOAT")  # soundfile writes it; roomtone.save would refuse
    with pytest.raises(AudioError, match="2 non-finite") as exc:
        load(path)
    assert "nan.wav" in str(exc.value)


def test_bad_channel(tmp_path):
    path = save(tmp_path / "stereo.wav", _tone(channels=2), SR)
    with pytest.raises(AudioError, match=r"channel=2 does not exist.*2 channel\(s\)"):
        load(path, channel=2)
    with pytest.raises(AudioError, match="channel=-3"):
        load(path, channel=-3)


def test_bad_parameters(tmp_path):
    path = save(tmp_path / "x.wav", _tone(), SR)
    with pytest.raises(ParameterError, match="sr=-1"):
        load(path, sr=-1)
    with pytest.raises(ParameterError, match="offset=-1"):
        load(path, offset=-1)
    with pytest.raises(AudioError, match="offset past the end|no samples"):
        load(path, offset=10.0)
