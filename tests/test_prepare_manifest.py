"""Manifest from a folder (parent-folder labels or a label pattern) and from a CSV (column detection)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.folder import build_manifest, detect_columns, manifest_from_csv, manifest_from_folder
from roomtone.prepare.manifest import labels_of, read_manifest, write_manifest

FSDD_PATTERN = r"(?P<label>\d)_(?P<group>[a-z]+)_(?P<take>\d+)\.wav"


def _wav(path, seconds=0.2, sr=8000, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.mark.data
def test_fsdd_manifest_labels_groups(fsdd_dir):
    rows, skipped = manifest_from_folder(fsdd_dir, label_pattern=FSDD_PATTERN)
    assert skipped == []
    assert len(rows) == 3000
    counts = Counter(r.label for r in rows)
    assert labels_of(rows) == [str(d) for d in range(10)]
    assert set(counts.values()) == {300}
    assert len({r.group for r in rows}) == 6
    assert all(r.extra["take"].isdigit() for r in rows)


@pytest.mark.data
def test_fsdd_official_split_expressible(fsdd_dir):
    rows, _ = manifest_from_folder(fsdd_dir, label_pattern=FSDD_PATTERN, test_pattern=r"_[0-4]\.wav$")
    test = [r for r in rows if r.split == "test"]
    assert len(test) == 10 * 6 * 5
    assert all(int(r.extra["take"]) <= 4 for r in test)
    assert all(int(r.extra["take"]) >= 5 for r in rows if r.split != "test")


def test_parent_folder_labels_and_skips(tmp_path):
    _wav(tmp_path / "dog" / "a.wav")
    _wav(tmp_path / "cat" / "sub" / "b.wav")
    _wav(tmp_path / "loose.wav")
    (tmp_path / "dog" / "notes.txt").write_text("x")
    rows, skipped = manifest_from_folder(tmp_path)
    assert sorted((r.label, r.path.endswith(".wav")) for r in rows) == [("dog", True), ("sub", True)]
    assert len(skipped) == 1 and "loose.wav" in skipped[0]["path"] and "directly in DATA" in skipped[0]["reason"]


def test_label_pattern_split_group_and_nonmatching(tmp_path):
    _wav(tmp_path / "yes_alice_train.wav")
    _wav(tmp_path / "no_bob_validation.wav")
    _wav(tmp_path / "random.wav")
    rows, skipped = manifest_from_folder(tmp_path, label_pattern=r"(?P<label>[a-z]+)_(?P<group>[a-z]+)_(?P<split>\w+)\.wav")
    got = sorted((r.label, r.group, r.split) for r in rows)
    assert got == [("no", "bob", "valid"), ("yes", "alice", "train")]
    assert [s["path"].endswith("random.wav") for s in skipped] == [True]


def test_bad_patterns(tmp_path):
    _wav(tmp_path / "a" / "x.wav")
    with pytest.raises(ParameterError, match="named group 'label'"):
        manifest_from_folder(tmp_path, label_pattern=r"(?P<class>\w+)\.wav")
    with pytest.raises(ParameterError, match="not a valid regular expression"):
        manifest_from_folder(tmp_path, label_pattern=r"(?P<label>")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        manifest_from_folder(tmp_path / "none")


def test_csv_detection_relative_paths_and_split_aliases(tmp_path):
    _wav(tmp_path / "audio" / "one.wav")
    _wav(tmp_path / "audio" / "two.wav")
    (tmp_path / "meta.csv").write_text("Filename,Category,Speaker,Subset,note\n"
                                       "audio/one.wav,dog,s1,training,hello\naudio/two.wav,cat,s2,val,\n,cat,s3,,\n")
    rows, skipped = manifest_from_csv(tmp_path / "meta.csv")
    assert [(r.label, r.group, r.split) for r in rows] == [("dog", "s1", "train"), ("cat", "s2", "valid")]
    assert rows[0].path == str((tmp_path / "audio" / "one.wav").resolve())
    assert rows[0].extra == {"note": "hello"}
    assert len(skipped) == 1 and "empty path or label" in skipped[0]["reason"]


def test_csv_columns_override_and_errors(tmp_path):
    _wav(tmp_path / "x.wav")
    (tmp_path / "m.csv").write_text("fn,tgt\nx.wav,bird\n")
    with pytest.raises(DataError, match="no path column"):
        manifest_from_csv(tmp_path / "m.csv")
    rows, _ = manifest_from_csv(tmp_path / "m.csv", columns={"path": "fn", "label": "tgt"})
    assert rows[0].label == "bird"
    with pytest.raises(DataError, match="'nope' is not a column"):
        detect_columns(["fn", "tgt"], {"path": "nope", "label": "tgt"})
    with pytest.raises(ParameterError, match="unknown key"):
        detect_columns(["fn"], {"colour": "fn"})


def test_csv_unknown_split_is_skipped_with_reason(tmp_path):
    _wav(tmp_path / "x.wav")
    _wav(tmp_path / "y.wav")
    (tmp_path / "m.csv").write_text("path,label,split\nx.wav,a,holdout\ny.wav,b,test\n")
    rows, skipped = manifest_from_csv(tmp_path / "m.csv")
    assert [r.label for r in rows] == ["b"]
    assert "holdout" in skipped[0]["reason"] and "allowed" in skipped[0]["reason"]


def test_build_manifest_dispatch_and_roundtrip(tmp_path):
    _wav(tmp_path / "data" / "dog" / "a.wav")
    _wav(tmp_path / "data" / "cat" / "b.wav")
    rows, _ = build_manifest(tmp_path / "data")
    write_manifest(tmp_path / "prep", rows)
    again, _ = build_manifest(tmp_path / "prep")  # a prepared folder is read through its manifest.csv
    assert [(r.path, r.label) for r in again] == [(r.path, r.label) for r in rows]
    assert [(r.path, r.label) for r in read_manifest(tmp_path / "prep")] == [(r.path, r.label) for r in rows]
    with pytest.raises(DataError, match="does not exist"):
        build_manifest(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match="expected a folder"):
        build_manifest(tmp_path / "x.txt")
