"""Audit and prepare on a crafted corpus of bad files: finish, list each bad file with its reason, keep
every good file. Per-file numbers are checked against numpy on the written samples."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from roomtone.prepare.audit import audit, audit_file
from roomtone.prepare.manifest import read_manifest
from roomtone.prepare.pipeline import prepare

SR = 8000


def _tone(seconds, freq, amp=0.3, channels=1):
    t = np.arange(int(seconds * SR)) / SR
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return y if channels == 1 else np.stack([y * (0.5 + 0.1 * c) for c in range(channels)], axis=1)


@pytest.fixture()
def corpus(tmp_path):
    """3 classes of good files + one of every kind of bad file."""
    root = tmp_path / "my data"
    good, bad = [], {}
    for lab, base in (("cat", 300.0), ("dog", 500.0), ("bird", 700.0)):
        (root / lab).mkdir(parents=True)
        for k in range(4):
            p = root / lab / f"{lab}_{k}.wav"
            sf.write(str(p), _tone(0.3 + 0.05 * k, base + 37 * k), SR, subtype="PCM_16")
            good.append(p)
    # kept, with warnings or odd formats
    p = root / "bird" / "chant d'oiseau é ü 鳥.wav"  # spaces and non-ASCII
    sf.write(str(p), _tone(0.4, 1234.0), SR, subtype="PCM_16")
    good.append(p)
    p = root / "dog" / "six channels.wav"
    sf.write(str(p), _tone(0.4, 880.0, channels=6), SR, subtype="PCM_16")
    good.append(p)
    p = root / "cat" / "deep 24 bit.wav"
    sf.write(str(p), _tone(0.4, 610.0), 16000, subtype="PCM_24")
    good.append(p)
    # bad
    bad["empty"] = root / "cat" / "empty.wav"
    bad["empty"].write_bytes(b"")
    full = root / "cat" / "cat_0.wav"
    bad["truncated"] = root / "dog" / "truncated.wav"
    bad["truncated"].write_bytes(full.read_bytes()[:20])
    bad["not audio"] = root / "dog" / "notes.wav"
    bad["not audio"].write_bytes(b"this is a text file, not a RIFF/WAVE file\n" * 50)
    y = _tone(0.3, 400.0)
    y[100:110] = np.nan
    bad["nan"] = root / "bird" / "nan float.wav"
    sf.write(str(bad["nan"]), y, SR, subtype="FLOAT")
    bad["short"] = root / "bird" / "tiny.wav"
    sf.write(str(bad["short"]), _tone(0.01, 300.0), SR, subtype="PCM_16")
    bad["duplicate"] = root / "dog" / "zz copy of a cat.wav"
    shutil.copy(full, bad["duplicate"])
    return root, good, bad


REASONS = {
    "empty": "empty",
    "truncated": "not a readable audio file",
    "not audio": "not a readable audio file",
    "nan": "non-finite",
    "short": "too short",
    "duplicate": "duplicate of",
}


def _check_bad_list(listed: dict[str, str], bad: dict):
    for kind, path in bad.items():
        assert str(path.resolve()) in listed, f"{kind} file not listed as bad"
        assert REASONS[kind] in listed[str(path.resolve())], (kind, listed[str(path.resolve())])


def test_audit_lists_every_bad_file_and_keeps_good(corpus, tmp_path):
    root, good, bad = corpus
    report = audit(root, out=tmp_path / "audit")
    listed = {b["path"]: b["reason"] for b in report["bad"]}
    _check_bad_list(listed, bad)
    assert len(listed) == len(bad)
    ok = {f["path"] for f in report["files"] if f["ok"]}
    assert ok == {str(p.resolve()) for p in good}
    dup = report["duplicates"][0]
    assert dup["label_conflict"] and dup["labels"] == ["cat", "dog"] and dup["kept"].endswith("cat_0.wav")
    s = report["summary"]
    assert (s["files"], s["ok"], s["bad"]) == (len(good) + len(bad), len(good), len(bad))
    assert s["sample_rates"] == {"8000": len(good) - 1, "16000": 1}
    warnings = {w["path"]: w["warning"] for w in report["warnings"]}
    assert "6 channels" in warnings[str((root / "dog" / "six channels.wav").resolve())]
    assert "16000 Hz" in warnings[str((root / "cat" / "deep 24 bit.wav").resolve())]
    on_disk = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert on_disk["summary"] == s
    page = (tmp_path / "audit" / "audit.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "tiny.wav" in page and "six channels.wav" in page
    assert "鳥" in (tmp_path / "audit" / "audit.json").read_text(encoding="utf-8")


def test_prepare_finishes_and_keeps_every_good_file(corpus, tmp_path):
    root, good, bad = corpus
    out = prepare(root, tmp_path / "prep", valid=0.0, test=0.25, seed=0, html=False)
    rows = read_manifest(out)
    assert sorted(r.path for r in rows) == sorted(str(p.resolve()) for p in good)
    meta = json.loads((out / "prepare.json").read_text())
    assert meta["labels"] == ["bird", "cat", "dog"] and meta["sr"] == SR and meta["bad_files"] == len(bad)
    assert meta["settings"]["test"] == 0.25 and meta["clip_seconds"] is None
    report = json.loads((out / "audit.json").read_text())
    _check_bad_list({b["path"]: b["reason"] for b in report["bad"]}, bad)
    assert {r.split for r in rows} == {"train", "test"}


def test_audit_file_numbers_against_numpy(tmp_path):
    y = np.concatenate([np.zeros(SR // 2), 0.5 * np.ones(SR // 2)]).astype(np.float32)
    y[:10] = 1.0
    p = tmp_path / "x.wav"
    sf.write(str(p), y, SR, subtype="FLOAT")
    rec = audit_file(p)
    assert rec["ok"] and rec["sr"] == SR and rec["channels"] == 1 and rec["bit_depth"] == 32
    assert rec["duration"] == pytest.approx(1.0)
    assert rec["peak"] == pytest.approx(1.0)
    assert rec["clipping"] == pytest.approx(10 / SR, abs=1e-6)
    assert rec["dc_offset"] == pytest.approx(float(y.mean()), abs=1e-6)
    assert rec["silence"] == pytest.approx(0.5, abs=0.03)  # first half is digital silence (20 ms frames)
    assert any("DC offset" in w for w in rec["warnings"])
    # same samples in another container and bit depth -> same content hash; file bytes differ
    sf.write(str(tmp_path / "y.flac"), np.zeros(800, np.float32), SR, subtype="PCM_16")
    sf.write(str(tmp_path / "y.wav"), np.zeros(800, np.float32), SR, subtype="PCM_24")
    assert audit_file(tmp_path / "y.flac")["hash"] == audit_file(tmp_path / "y.wav")["hash"]


def test_cli_prepare_and_audit(corpus, tmp_path):
    from roomtone.cli.main import build_app

    root, good, bad = corpus
    runner = CliRunner()
    app = build_app()
    r = runner.invoke(app, ["audit", str(root), "--out", str(tmp_path / "a"), "--max-rows", "50"])
    assert r.exit_code == 0, r.output
    assert "bad files (6)" in r.output and (tmp_path / "a" / "audit.html").exists()
    r = runner.invoke(app, ["prepare", str(root), str(tmp_path / "p"), "--valid", "0", "--test", "0.25"])
    assert r.exit_code == 0, r.output
    assert len(read_manifest(tmp_path / "p")) == len(good)
    r = runner.invoke(app, ["prepare", str(root), str(tmp_path / "p")])
    assert r.exit_code != 0 and "already prepared" in str(r.exception)
