"""Silence trim (vs librosa), energy-centred crop / pad, sliding windows, segment rows."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from roomtone.errors import ParameterError
from roomtone.prepare.manifest import ManifestRow
from roomtone.prepare.segment import fix_length, segment_rows, sliding_windows, trim_bounds


def _burst(sr=8000, total=2.0, on=(0.7, 1.1), seed=0):
    rng = np.random.default_rng(seed)
    y = 1e-4 * rng.standard_normal(int(total * sr))
    a, b = int(on[0] * sr), int(on[1] * sr)
    y[a:b] += 0.5 * np.sin(2 * np.pi * 300 * np.arange(b - a) / sr)
    return y.astype(np.float32)


@pytest.mark.parametrize("top_db", [20.0, 40.0, 60.0])
@pytest.mark.parametrize("frame_length,hop_length", [(2048, 512), (512, 128)])
def test_trim_matches_librosa(top_db, frame_length, hop_length):
    librosa = pytest.importorskip("librosa")
    y = _burst()
    _, (ls, le) = librosa.effects.trim(y, top_db=top_db, frame_length=frame_length, hop_length=hop_length)
    assert trim_bounds(y, top_db=top_db, frame_length=frame_length, hop_length=hop_length) == (ls, le)


def test_trim_all_silent_and_bad_args():
    # digital silence: every frame is at the reference level, so nothing is trimmed (as librosa)
    assert trim_bounds(np.zeros(1000, np.float32), top_db=60) == (0, 1000)
    assert trim_bounds(np.zeros(0, np.float32)) == (0, 0)
    with pytest.raises(ParameterError, match="top_db=0"):
        trim_bounds(np.zeros(10), top_db=0)


def test_fix_length_energy_centred_crop_and_pad():
    sr = 8000
    y = torch.from_numpy(_burst(sr=sr, on=(1.5, 1.7)))
    out = fix_length(y, length=sr // 2)
    assert out.shape == (sr // 2,)
    # the cropped window holds the whole burst
    assert float((out**2).sum()) == pytest.approx(float((y[int(1.5 * sr):int(1.7 * sr)] ** 2).sum()), rel=1e-3)
    short = torch.ones(100)
    padded = fix_length(short, length=300)
    assert padded.shape == (300,) and padded[:100].eq(1).all() and padded[100:].eq(0).all()
    centred = fix_length(short, length=300, pad="center")
    assert centred[100:200].eq(1).all() and centred[:100].eq(0).all()
    two = torch.stack([y, y])
    assert fix_length(two, length=sr).shape == (2, sr)
    with pytest.raises(ParameterError, match="length=0"):
        fix_length(y, length=0)


def test_sliding_windows_cover_everything():
    w = sliding_windows(0.0, 3.5, window=1.0, hop=0.5)
    assert w[0] == (0.0, 1.0) and w[-1] == (2.5, 3.5)
    assert all(abs((e - s) - 1.0) < 1e-9 for s, e in w)
    starts = [s for s, _ in w]
    assert starts == sorted(starts)
    w2 = sliding_windows(0.0, 3.3, window=1.0, hop=1.0)
    assert w2[-1] == (2.3, 3.3)  # tail aligned to the end, nothing left out
    assert sliding_windows(1.0, 1.4, window=1.0, hop=0.5) == [(1.0, 1.4)]
    with pytest.raises(ParameterError):
        sliding_windows(0, 1, window=0, hop=1)


def test_segment_rows_trim_and_windows(tmp_path):
    sr = 8000
    p = tmp_path / "a b é.wav"
    sf.write(str(p), _burst(sr=sr, total=3.0, on=(1.0, 2.2)), sr)
    row = ManifestRow(path=str(p), label="dog", group="spk", extra={"k": "v"})
    trimmed = segment_rows([row], trim_db=30)
    assert len(trimmed) == 1
    t = trimmed[0]
    a, b = trim_bounds(sf.read(str(p), dtype="float32")[0], top_db=30)
    assert (t.start, t.end) == (pytest.approx(a / sr, abs=1e-6), pytest.approx(b / sr, abs=1e-6))
    assert 0.7 < t.start < 1.0 and 2.2 < t.end < 2.5  # the burst is 1.0-2.2 s; frames are 0.256 s long
    wins = segment_rows([row], trim_db=30, window=0.5, hop=0.25)
    assert len(wins) >= 4
    assert all((r.label, r.group, r.extra) == ("dog", "spk", {"k": "v"}) for r in wins)
    assert wins[0].start == t.start and wins[-1].end == pytest.approx(t.end, abs=1e-5)
    plain = segment_rows([row], window=1.0)
    assert [(r.start, r.end) for r in plain] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    errors = []
    segment_rows([ManifestRow(path=str(tmp_path / "missing.wav"), label="x")], window=1.0,
                 on_error=lambda r, why: errors.append(why))
    assert len(errors) == 1 and "does not exist" in errors[0]


def test_prepare_with_trim_and_windows_keeps_files_on_one_side(tmp_path):
    from roomtone.prepare.dataset import AudioDataset
    from roomtone.prepare.manifest import read_manifest
    from roomtone.prepare.pipeline import prepare
    from roomtone.prepare.splits import groups_overlap

    sr = 8000
    for k in range(8):
        lab = "ab"[k % 2]
        p = tmp_path / "data" / lab / f"rec {k}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), _burst(sr=sr, total=4.0, on=(0.5, 3.5), seed=k), sr)
    out = prepare(tmp_path / "data", tmp_path / "prep", trim_db=30, window=1.0, hop=0.5, clip_seconds=1.0,
                  valid=0.25, test=0.25, html=False)
    rows = read_manifest(out)
    assert all(r.start is not None and r.end - r.start == pytest.approx(1.0, abs=1e-5) for r in rows)
    assert all(0.3 < r.start and r.end < 3.7 for r in rows)  # inside the trimmed span
    per_file = {}
    for r in rows:
        per_file.setdefault(r.path, set()).add(r.split)
    assert len(per_file) == 8 and all(len(s) == 1 for s in per_file.values())
    assert groups_overlap(rows) == {}
    x, _ = AudioDataset.from_dir(out, split="train")[0]
    assert x.shape == (sr,)
