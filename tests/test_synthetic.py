"""The embedded demo dataset: determinism, structure, manifest round trip, event facts, bad input."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.datasets import synthetic_events
from roomtone.prepare.datasets.synthetic import CLASSES, render_example
from roomtone.prepare.manifest import labels_of, read_manifest

SMALL = dict(n_per_class=4, n_sessions=2, sr=16000, clip_seconds=1.0)


def _digest(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "a"
    synthetic_events(out, seed=3, **SMALL)
    return out


def test_same_seed_same_bytes_other_seed_other_audio(small, tmp_path):
    synthetic_events(tmp_path / "b", seed=3, **SMALL)
    assert _digest(small) == _digest(tmp_path / "b")
    synthetic_events(tmp_path / "c", seed=4, **SMALL)
    a, c = _digest(small), _digest(tmp_path / "c")
    wavs = [k for k in a if k.endswith(".wav")]
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in wavs)


def test_structure_and_manifest_round_trip(small):
    rows = read_manifest(small)
    assert labels_of(rows) == sorted(CLASSES) and len(CLASSES) == 9
    assert Counter(r.label for r in rows) == {c: 4 for c in CLASSES}
    assert Counter(r.group for r in rows) == {"session00": 18, "session01": 18}
    assert {(r.label, r.group) for r in rows} == {(c, g) for c in CLASSES for g in ("session00", "session01")}
    assert all(r.split == "" and r.start is None for r in rows)
    for r in rows:
        info = sf.info(r.path)  # relative paths resolved against the manifest's folder
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
        assert r.path.startswith(str(small)) and f"/{r.label}/" in r.path
    stamp = json.loads((small / "synthetic.json").read_text())
    assert stamp["seed"] == 3 and stamp["labels"] == list(CLASSES)


def test_event_facts_match_the_audio(small):
    """onset/event_seconds in the manifest bound the non-silent samples; lengths differ per class."""
    rows = read_manifest(small)
    for r in rows:
        x, sr = sf.read(r.path)
        onset, dur = float(r.extra["onset"]), float(r.extra["event_seconds"])
        loud = np.flatnonzero(np.abs(x) > 1e-3 * np.abs(x).max())
        assert loud[0] / sr >= onset - 1e-3
        assert loud[-1] / sr <= onset + dur + 1e-3
        assert 0 < float(r.extra["active_seconds"]) <= dur + 1e-6
        assert 0.0 <= onset and onset + dur <= 1.0 + 1e-6
    mean_dur = {c: np.mean([float(r.extra["event_seconds"]) for r in rows if r.label == c]) for c in CLASSES}
    assert mean_dur["hum"] > 0.65 and mean_dur["siren"] > 0.55
    assert mean_dur["beeps_3"] > mean_dur["beeps_2"]
    assert max(mean_dur.values()) / min(mean_dur.values()) > 2.0


def _count_bursts(x: np.ndarray, sr: int) -> int:
    """Count separated bursts in a 2 ms envelope (threshold at 10% of the peak, gaps >= 20 ms)."""
    hop = int(0.002 * sr)
    env = np.abs(x[: len(x) // hop * hop]).reshape(-1, hop).max(axis=1)
    on = np.flatnonzero(env > 0.1 * env.max())
    return 1 + int(np.sum(np.diff(on) > 10))


@pytest.mark.parametrize("label", ["beeps_2", "beeps_3", "clicks_slow", "clicks_fast"])
def test_counts_in_the_audio(label):
    """Beeps and clicks in the waveform agree with n_events; click rates differ by class, counts overlap."""
    for i in range(6):
        x, facts = render_example(label, seed=0, index=i, session=i % 3, sr=16000, clip_seconds=1.0)
        assert x.dtype == np.float32 and x.shape == (16000,) and np.abs(x).max() <= 0.9
        assert _count_bursts(x, 16000) == facts["n_events"]
        if label.startswith("beeps"):
            assert facts["n_events"] == int(label[-1])
        else:
            rate = (facts["n_events"] - 1) / (facts["event_seconds"] - 0.004)
            assert (4.5 < rate < 8.5) if label == "clicks_slow" else (11 < rate < 21)


def test_chirp_direction_is_in_the_time_structure():
    """chirp_up rises and chirp_down falls in dominant frequency; their average spectra are alike."""
    from scipy.signal import stft

    for label, sign in (("chirp_up", 1), ("chirp_down", -1)):
        x, facts = render_example(label, seed=1, index=0, session=0, sr=16000, clip_seconds=1.0)
        a = int(facts["onset"] * 16000)
        seg = x[a : a + int(facts["event_seconds"] * 16000)]
        f, _, z = stft(seg, fs=16000, nperseg=512)
        peak = f[np.abs(z).argmax(axis=0)][2:-2]
        assert sign * (peak[-1] - peak[0]) > 300


def test_reuse_refuse_and_overwrite(small, tmp_path):
    out = tmp_path / "d"
    m1 = synthetic_events(out, seed=0, **SMALL)
    mtime = m1.stat().st_mtime_ns
    assert synthetic_events(out, seed=0, **SMALL) == m1 and m1.stat().st_mtime_ns == mtime  # reused
    with pytest.raises(DataError, match="other settings"):
        synthetic_events(out, seed=1, **SMALL)
    synthetic_events(out, seed=1, **{**SMALL, "n_per_class": 2}, overwrite=True)
    assert len(read_manifest(out)) == 2 * len(CLASSES) and len(list(out.rglob("*.wav"))) == 2 * len(CLASSES)
    other = tmp_path / "e"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="refusing"):
        synthetic_events(other, overwrite=True, **SMALL)
    assert (other / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"seed": -1}, "seed=-1"),
        ({"n_per_class": 0}, "n_per_class=0"),
        ({"n_sessions": 5, "n_per_class": 4}, "n_sessions=5"),
        ({"sr": 4000}, "sr=4000"),
        ({"clip_seconds": 0.5}, "clip_seconds=0.5"),
    ],
)
def test_bad_arguments(tmp_path, kw, match):
    with pytest.raises(ParameterError, match=match):
        synthetic_events(tmp_path / "x", **{**SMALL, **kw})
    assert not (tmp_path / "x").exists()


def test_unknown_label():
    with pytest.raises(ParameterError, match="'bark'"):
        render_example("bark", seed=0, index=0, session=0, sr=16000, clip_seconds=1.0)
