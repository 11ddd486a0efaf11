"""Randomized transforms: determinism, replay, batched == per example, bad input, make_condition."""

from __future__ import annotations

import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.prepare.banks import NoiseBank
from roomtone.prepare.conditions import make_condition
from roomtone.prepare.roombank import RoomBank
from roomtone.prepare.transforms import (
    AddBabble,
    AddColoredNoise,
    AddNoise,
    Compose,
    Gain,
    OneOf,
    Reverberate,
    SimulateMicrophone,
)

SR = 16000


@pytest.fixture(scope="module")
def noise_bank(noise_dir):
    return NoiseBank.from_path(noise_dir, sr=SR, split="train", max_files=4, max_seconds=3.0)


@pytest.fixture(scope="module")
def room_bank(rir_dir):
    return RoomBank.from_path(rir_dir, sr=SR, split="train", max_seconds=0.5)


@pytest.fixture(scope="module")
def audio():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 8000, generator=g) * 0.1


def _all(noise_bank, room_bank, fsdd_files):
    return {
        "gain": Gain(min_gain_db=-6, max_gain_db=6, sr=SR),
        "noise": AddNoise(noise_bank, sr=SR, min_snr_db=0, max_snr_db=10, p=0.7),
        "colored": AddColoredNoise(sr=SR, min_snr_db=5, max_snr_db=15),
        "babble": AddBabble(fsdd_files, sr=SR, min_speakers=2, max_speakers=4),
        "room": Reverberate(room_bank, sr=SR, min_wet=0.5, max_wet=1.0),
        "mic": SimulateMicrophone(["phone", "laptop", "telephone"], sr=SR, min_gain_db=-3, max_gain_db=6),
        "chain": Compose([Reverberate(room_bank, sr=SR), AddNoise(noise_bank, sr=SR), SimulateMicrophone(sr=SR)]),
        "oneof": OneOf([Gain(sr=SR), AddColoredNoise(sr=SR), Reverberate(room_bank, sr=SR)], p=0.8),
        # the order: noise, then the room and the microphone, fused into one FFT pair
        "fused": Compose([AddNoise(noise_bank, sr=SR), Reverberate(room_bank, sr=SR, p=0.7),
                          SimulateMicrophone(["phone", "laptop", "telephone"], sr=SR, p=0.7, codec=False)]),
    }


@pytest.fixture(scope="module")
def transforms(noise_bank, room_bank, fsdd_dir):
    files = sorted(fsdd_dir.glob("*_jackson_*.wav"))[:6]
    return _all(noise_bank, room_bank, files)


NAMES = ["gain", "noise", "colored", "babble", "room", "mic", "chain", "oneof", "fused"]


@pytest.mark.parametrize("name", NAMES)
def test_seed_determinism_replay_and_batching(transforms, audio, name):
    t = transforms[name]
    a = t(audio, generator=torch.Generator().manual_seed(7))
    pa = t.last_params
    b = t(audio, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.numpy().tobytes() == b.numpy().tobytes()
    assert t.last_params == pa and len(pa) == audio.shape[0]
    c = t(audio, generator=torch.Generator().manual_seed(8))
    assert t.last_params != pa and not torch.equal(a, c)
    # recorded parameters reproduce the output exactly
    assert torch.equal(t.replay(audio, pa), a)
    # batched == per example for the same parameters. Microphones quantize (down to 8 bits for
    # 'telephone'): a 1e-7 difference between batched and single FFTs may flip one rounding step.
    lsb = 2.0**-7 if name in ("mic", "chain", "fused") else 1e-5
    for i in range(audio.shape[0]):
        one = t.replay(audio[i], pa[i])
        assert torch.allclose(one, a[i], atol=lsb + 1e-6), (name, i)
        assert float((one - a[i]).abs().mean()) < 1e-5, (name, i)
    assert torch.isfinite(a).all() and a.shape == audio.shape


def _linear_mics():
    from dataclasses import replace

    from roomtone.prepare.microphones import get_preset

    # no clipping/quantization: a 1e-7 difference could flip a rounding step and hide the comparison
    return [replace(get_preset(m), bits=None, clip_mode="none", codec=None) for m in ("phone", "laptop", "telephone")]


def test_fused_room_and_mic_match_the_sequential_chain(room_bank):
    """Compose fuses Reverberate + SimulateMicrophone into one FFT pair: same draws, same samples except
    within the microphone's 20 ms ringing at both ends (documented in transforms/fused.py)."""

    def make(fuse):
        return Compose([Reverberate(room_bank, sr=SR, p=0.8), SimulateMicrophone(_linear_mics(), sr=SR, p=0.8)],
                       fuse=fuse)

    x = torch.randn(16, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    fused, seq = make(True), make(False)
    a = fused(x, generator=torch.Generator().manual_seed(1))
    b = seq(x, generator=torch.Generator().manual_seed(1))
    assert fused.last_params == seq.last_params
    kinds = {(s[0]["applied"], s[1]["applied"]) for s in (p["transforms"] for p in fused.last_params)}
    assert len(kinds) >= 3  # room and mic, room only, mic only (and maybe neither) are all covered
    edge = SR // 50
    rms = float(b.pow(2).mean().sqrt())
    assert float((a - b)[:, edge:-edge].abs().max()) < 1e-3 * rms
    assert float((a - b).pow(2).sum() / b.pow(2).sum()) < 1e-4
    assert not torch.equal(a, b)  # the fused path really ran
    assert torch.equal(fused.replay(x, fused.last_params), a)
    for i, p in enumerate(fused.last_params):  # untouched examples stay bit-identical
        if not any(s["applied"] for s in p["transforms"]):
            assert torch.equal(a[i], x[i])


def test_fused_falls_back_to_sequential_for_a_wet_dry_mix(room_bank):
    def make(fuse):
        return Compose([Reverberate(room_bank, sr=SR, min_wet=0.3, max_wet=0.9),
                        SimulateMicrophone(_linear_mics(), sr=SR)], fuse=fuse)

    x = torch.randn(4, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    a = make(True)(x, generator=torch.Generator().manual_seed(3))
    b = make(False)(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_fused_torch_path_matches_cpu_fast_path(room_bank, monkeypatch):
    import roomtone.prepare.rooms as rooms

    t = Compose([Reverberate(room_bank, sr=SR, p=0.7), SimulateMicrophone(_linear_mics(), sr=SR, p=0.7)])
    x = torch.randn(8, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    a = t(x, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(rooms, "CPU_FAST_PATH", False)
    room_bank._spec.clear()
    b = t.replay(x, t.last_params)
    room_bank._spec.clear()
    assert torch.allclose(a, b, atol=1e-5)


def test_probability_and_unapplied_examples(noise_bank, audio):
    t = AddNoise(noise_bank, sr=SR, p=0.0)
    assert torch.equal(t(audio, generator=torch.Generator()), audio)
    assert all(p == {"applied": False} for p in t.last_params)
    t = AddNoise(noise_bank, sr=SR, p=0.5)
    y = t(audio, generator=torch.Generator().manual_seed(3))
    applied = [p["applied"] for p in t.last_params]
    assert 0 < sum(applied) < len(applied)
    for i, a in enumerate(applied):
        assert torch.equal(y[i], audio[i]) != a


def test_recorded_parameters_are_meaningful(noise_bank, audio):
    from roomtone.prepare.noise import achieved_snr_db

    t = AddNoise(noise_bank, sr=SR, min_snr_db=3, max_snr_db=12)
    y = t(audio, generator=torch.Generator().manual_seed(0))
    for i, p in enumerate(t.last_params):
        assert p["noise"] in noise_bank.names and 3 <= p["snr_db"] <= 12
        assert abs(float(achieved_snr_db(audio[i], y[i] - audio[i])) - p["snr_db"]) < 0.05


def test_own_generator_when_none_given(audio):
    t = Gain(sr=SR, seed=4)
    a = t(audio)
    b = Gain(sr=SR, seed=4)(audio)
    assert torch.equal(a, b)


def test_lengths_respected(noise_bank, room_bank):
    x = torch.randn(2, 4000) * 0.1
    x[1, 2000:] = 0
    lengths = torch.tensor([4000, 2000])
    for chain in (Compose([Reverberate(room_bank, sr=SR), AddNoise(noise_bank, sr=SR), SimulateMicrophone(sr=SR)]),
                  Compose([AddNoise(noise_bank, sr=SR), Reverberate(room_bank, sr=SR), SimulateMicrophone(sr=SR)])):
        y = chain(x, generator=torch.Generator().manual_seed(0), lengths=lengths)
        assert torch.all(y[1, 2000:] == 0) and torch.equal(chain.replay(x, chain.last_params, lengths=lengths), y)


def test_bad_inputs(noise_bank, room_bank, tmp_path):
    from roomtone.errors import DataError

    with pytest.raises(ParameterError, match="reversed"):
        AddNoise(noise_bank, sr=SR, min_snr_db=10, max_snr_db=0)
    with pytest.raises(ParameterError, match="p=1.5"):
        Gain(p=1.5)
    with pytest.raises(ParameterError, match="8000 Hz|16000 Hz"):
        AddNoise(noise_bank, sr=8000)
    with pytest.raises(ParameterError, match="16000 Hz"):
        Reverberate(room_bank, sr=8000)
    with pytest.raises(DataError, match="does not exist"):
        AddNoise(tmp_path / "nope", sr=SR)
    with pytest.raises(ParameterError, match="shape"):
        Gain(sr=SR)(torch.zeros(1, 2, 3))
    with pytest.raises(ParameterError, match="tin-can"):
        SimulateMicrophone("tin-can", sr=SR)
    with pytest.raises(ParameterError, match="2 parameter dicts"):
        Gain(sr=SR).replay(torch.zeros(3, 10), [{"gain_db": 0}, {"gain_db": 0}])


def test_noise_shorter_than_signal_loops(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "short.wav", np.random.default_rng(0).normal(size=1600).astype("float32") * 0.1, SR)
    t = AddNoise(tmp_path, sr=SR, split=None, min_snr_db=5, max_snr_db=5)
    y = t(torch.randn(2, 16000) * 0.1, generator=torch.Generator())
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["clean", "noise", "room", "mic", "all", "mic+room", "noise+room"])
def test_make_condition(name, noise_dir, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ROOMTONE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    t = make_condition(name, sr=8000, noise=noise_dir if name == "all" else None, split="test", snr_db=(5, 5))
    x = torch.randn(3, 4000) * 0.1
    y = t(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(t.replay(x, t.last_params), y)
    assert torch.equal(y, x) == (name == "clean")
    if name == "all":
        steps = t.last_params[0]["transforms"]
        assert [s["name"] for s in steps] == ["Reverberate", "AddNoise", "SimulateMicrophone"]
        test_names = {f.name for f in __import__("roomtone.prepare.banks", fromlist=["x"]).list_bank_files(
            noise_dir, split="test")}
        assert steps[1]["noise"] in test_names
    if "+" in name:  # parts applied in the order of 'all' (room, noise, mic), whatever the order written
        order = {"mic+room": ["Reverberate", "SimulateMicrophone"], "noise+room": ["Reverberate", "AddColoredNoise"]}
        assert [s["name"] for s in t.last_params[0]["transforms"]] == order[name]
    with pytest.raises(ParameterError, match="condition 'fog'"):
        make_condition("fog", sr=8000)
    with pytest.raises(ParameterError, match="'noise\\+fog'"):
        make_condition("noise+fog", sr=8000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_same_code_same_result(transforms, audio):
    for name in ("noise", "room", "chain"):
        t = transforms[name]
        a = t(audio, generator=torch.Generator().manual_seed(1))
        b = t(audio.cuda(), generator=torch.Generator().manual_seed(1))
        assert b.is_cuda and torch.allclose(a, b.cpu(), atol=1e-4)


def test_picklable_for_dataloader_workers(transforms, audio):
    import pickle

    t = transforms["chain"]
    t(audio)  # creates the transform's own generator and device caches
    clone = pickle.loads(pickle.dumps(t))
    a = t(audio, generator=torch.Generator().manual_seed(2))
    b = clone(audio, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    from roomtone.prepare.noise import NoiseBank as NB
    from roomtone.prepare.rooms import RoomBank as RB

    assert NB is NoiseBank and RB is RoomBank


def test_babble_from_a_prepared_manifest(tmp_path, fsdd_dir):
    from roomtone.prepare.manifest import ManifestRow, write_manifest

    files = sorted(fsdd_dir.glob("3_nicolas_*.wav"))[:6]
    rows = [ManifestRow(str(f), "3", "nicolas", "train" if i < 4 else "test", start=0.05, end=0.25)
            for i, f in enumerate(files)]
    write_manifest(tmp_path, rows)
    t = AddBabble(tmp_path, sr=8000, min_speakers=2, max_speakers=2, split="train")
    assert len(t.bank) == 4 and all(int(n) == 1600 for n in t.bank.lengths)  # segments honoured
    y = t(torch.randn(2, 4000) * 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(y).all() and all(len(p["utterances"]) == 2 for p in t.last_params)


def test_torch_fft_path_matches_the_cpu_fast_path(transforms, audio, monkeypatch):
    """GPU batches take torch.fft; CPU float32 takes scipy.fft. Both must give the same numbers."""
    import roomtone.prepare.rooms as rooms

    t = transforms["chain"]
    a = t(audio, generator=torch.Generator().manual_seed(5))
    params = t.last_params
    monkeypatch.setattr(rooms, "CPU_FAST_PATH", False)
    t.transforms[0].bank._spec.clear()
    b = t.replay(audio, params)
    assert torch.allclose(a, b, atol=2.0**-7 + 1e-6) and float((a - b).abs().mean()) < 1e-5


def test_babble_never_uses_the_examples_own_recording(fsdd_dir):
    """With ``sources`` an example is mixed only with *other* utterances, even from a bank of 3 files."""
    from roomtone.audio import load

    files = sorted(fsdd_dir.glob("7_theo_*.wav"))[:3]
    t = AddBabble(files, sr=8000, min_speakers=2, max_speakers=2, min_snr_db=5, max_snr_db=5)
    x = torch.stack([torch.nn.functional.pad(load(f, sr=8000)[0][:3000], (0, 3000))[:3000] for f in files])
    seen = set()
    for seed in range(20):
        t(x, generator=torch.Generator().manual_seed(seed), sources=files)
        for f, p in zip(files, t.last_params, strict=True):
            assert f.name not in p["utterances"] and len(set(p["utterances"])) == 2
            seen.add(tuple(sorted(p["utterances"])))
    assert len(seen) == 3  # for each example: the two others
    # without sources the draws may include the example itself (it cannot know): same code, no exclusion
    t(x, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ParameterError, match="2 sources for a batch of 3"):
        t(x, generator=torch.Generator(), sources=files[:2])
    # a bank whose only file is the example's own: nothing is added, nothing fails
    solo = AddBabble(files[:1], sr=8000, min_speakers=1, max_speakers=1)
    y = solo(x[:1], generator=torch.Generator().manual_seed(0), sources=files[:1])
    assert solo.last_params[0]["utterances"] == [] and torch.equal(y, x[:1])
    # Compose passes the sources through
    c = Compose([Gain(sr=8000), t])
    c(x, generator=torch.Generator().manual_seed(1), sources=files)
    assert all(f.name not in p["transforms"][1]["utterances"] for f, p in zip(files, c.last_params, strict=True))


def test_audio_dataset_passes_each_rows_file_as_source(fsdd_dir):
    from roomtone.prepare.dataset import AudioDataset
    from roomtone.prepare.manifest import ManifestRow

    files = sorted(fsdd_dir.glob("7_theo_*.wav"))[:3]
    rows = [ManifestRow(str(f), "7", "theo", "train") for f in files]
    t = AddBabble(files, sr=8000, min_speakers=2, max_speakers=2)
    ds = AudioDataset(rows, labels=["7"], sr=8000, clip_seconds=0.3, transform=t)
    for i in range(3):
        ds[i]
        assert files[i].name not in t.last_params[0]["utterances"]
