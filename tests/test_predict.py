"""Predict: sliding windows, timestamps, clip decision; bad files reported, never a crash."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from roomtone.models import create_model
from roomtone.train.predict import predict_files, predict_waveform, window_starts

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("vgg_tiny", num_classes=3, sr=8000, n_fft=256, hop_length=80, n_mels=32).eval()


def test_window_starts_cover_the_tail():
    assert window_starts(100, window=40, hop=20) == [0, 20, 40, 60]
    assert window_starts(105, window=40, hop=20) == [0, 20, 40, 60, 65]
    assert window_starts(10, window=40, hop=20) == [0]


def test_predict_waveform_windows_match_model(model):
    x = torch.randn(8000 * 3) * 0.1
    res = predict_waveform(model, x, window_seconds=1.0, hop_seconds=0.5)
    assert [w["start"] for w in res["windows"]] == [0.0, 0.5, 1.0, 1.5, 2.0]
    with torch.no_grad():
        ref = torch.softmax(model(x[8000:16000][None]), -1)[0].numpy()
    np.testing.assert_allclose(res["windows"][2]["scores"], ref, atol=1e-5)
    np.testing.assert_allclose(res["clip_scores"], np.mean([w["scores"] for w in res["windows"]], 0), atol=1e-6)


def test_bad_inputs_reported_good_ones_predicted(model, tmp_path, fsdd_dir):
    good = tmp_path / "good.wav"
    sf.write(good, sf.read(fsdd_dir / "3_jackson_0.wav")[0], 8000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(400, np.float32), 8000)  # 0.05 s
    long = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(long, (0.05 * rng.standard_normal(8000 * 600)).astype(np.float32), 8000)  # 10 minutes
    stereo = tmp_path / "stereo48k.wav"
    t = np.arange(48000) / 48000
    sf.write(stereo, np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32) * 0.3,
             48000)
    missing = tmp_path / "missing.wav"
    out = tmp_path / "preds.csv"
    recs = predict_files(model, [good, broken, short, long, stereo, missing], labels=LABELS, window_seconds=1.0,
                         hop_seconds=1.0, out=out)
    by = {r["file"]: r for r in recs}
    assert len(recs) == 6
    for f in (good, long, stereo):
        r = by[str(f)]
        assert r["ok"] and r["label"] in LABELS and sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(by[str(long)]["windows"]) == 600 and by[str(long)]["windows"][-1]["end"] == pytest.approx(600.0)
    assert by[str(stereo)]["channels"] == 2 and by[str(stereo)]["sr"] == 48000
    for f, reason in ((broken, ""), (short, "too short"), (missing, "no such file")):
        r = by[str(f)]
        assert not r["ok"] and reason in r["error"] and r["error"]
    rows = list(csv.DictReader(open(out)))
    assert {r["file"] for r in rows} == {str(f) for f in (good, broken, short, long, stereo, missing)}
    assert sum(1 for r in rows if r["window"] == "clip") == 3
    js = tmp_path / "preds.json"
    predict_files(model, [good, short], labels=LABELS, out=js)
    assert [r["ok"] for r in json.loads(js.read_text())] == [True, False]
