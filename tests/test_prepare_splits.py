"""Grouped, stratified, seed-reproducible splits; given split column; leave-groups-out; warnings."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.folder import manifest_from_folder
from roomtone.prepare.manifest import ManifestRow
from roomtone.prepare.splits import (
    SplitWarning,
    assign_splits,
    groups_overlap,
    leave_groups_out_folds,
    split_counts,
)

FSDD_PATTERN = r"(?P<label>\d)_(?P<group>[a-z]+)_(?P<take>\d+)\.wav"


def _rows(n_labels=4, per_label=50, n_groups=0):
    rows = []
    for lab in range(n_labels):
        for k in range(per_label):
            g = f"g{k % n_groups}" if n_groups else ""
            rows.append(ManifestRow(path=f"/x/{lab}_{k}.wav", label=f"c{lab}", group=g))
    return rows


@pytest.mark.data
def test_fsdd_grouped_split_has_no_shared_speaker(fsdd_dir):
    rows, _ = manifest_from_folder(fsdd_dir, label_pattern=FSDD_PATTERN)
    for seed in (0, 1, 2):
        out = assign_splits(rows, valid=0.1, test=0.2, seed=seed)
        assert groups_overlap(out) == {}
        sides = {s: {r.group for r in out if r.split == s} for s in ("train", "valid", "test")}
        assert all(sides.values())
        assert not (sides["train"] & sides["test"]) and not (sides["train"] & sides["valid"])
        assert not (sides["valid"] & sides["test"])
        # stratified: every class in every split
        assert all(all(v > 0 for v in per.values()) for per in split_counts(out).values())


@pytest.mark.data
def test_fsdd_official_split_keeps_given_test(fsdd_dir):
    rows, _ = manifest_from_folder(fsdd_dir, label_pattern=FSDD_PATTERN, test_pattern=r"_[0-4]\.wav$")
    with pytest.warns(SplitWarning, match="more than one split"):
        out = assign_splits(rows, valid=0.1, test=0.2, seed=0)
    c = Counter(r.split for r in out)
    assert c["test"] == 300 and c["train"] + c["valid"] == 2700 and c["valid"] > 0
    assert all((r.split == "test") == (int(r.extra["take"]) < 5) for r in out)
    # among the unassigned rows, speakers are still not shared between train and valid
    tr = {r.group for r in out if r.split == "train"}
    va = {r.group for r in out if r.split == "valid"}
    assert not tr & va


def test_seed_reproducible_and_seed_dependent():
    rows = _rows(n_groups=10)
    a = assign_splits(rows, seed=3)
    b = assign_splits(rows, seed=3)
    assert [r.split for r in a] == [r.split for r in b]
    others = [[r.split for r in assign_splits(rows, seed=s)] for s in range(4, 10)]
    assert any(o != [r.split for r in a] for o in others)


def test_ungrouped_is_stratified_to_the_fraction():
    rows = _rows(n_labels=3, per_label=100)
    out = assign_splits(rows, valid=0.1, test=0.2, seed=0)
    counts = split_counts(out)
    for lab in ("c0", "c1", "c2"):
        assert counts["train"][lab] == 70 and counts["valid"][lab] == 10 and counts["test"][lab] == 20


def test_segments_of_one_file_stay_together_without_groups():
    rows = [ManifestRow(path=f"/x/{k // 5}.wav", label=f"c{k % 2}", start=float(k % 5), end=float(k % 5 + 1))
            for k in range(200)]
    out = assign_splits(rows, group_split=False, seed=1)
    per_file = {}
    for r in out:
        per_file.setdefault(r.path, set()).add(r.split)
    assert all(len(s) == 1 for s in per_file.values())


def test_given_split_is_respected():
    rows = _rows(n_groups=10)
    rows = [r.with_split("test") if r.group == "g0" else r for r in rows]
    out = assign_splits(rows, valid=0.2, test=0.2, seed=0)
    assert {r.split for r in out if r.group == "g0"} == {"test"}
    assert {r.split for r in out if r.group != "g0"} == {"train", "valid"}  # test is given: no new test rows


def test_leave_groups_out():
    rows = _rows(n_groups=6)
    out = assign_splits(rows, test_groups=["g1", "g2"], valid=0.0, seed=0)
    assert {r.group for r in out if r.split == "test"} == {"g1", "g2"}
    assert {r.split for r in out if r.group not in ("g1", "g2")} == {"train"}
    folds = list(leave_groups_out_folds(rows, n_test_groups=1, valid=0.2))
    assert [f[0] for f in folds] == [[f"g{k}"] for k in range(6)]
    for tg, fold in folds:
        assert {r.group for r in fold if r.split == "test"} == set(tg)
        assert groups_overlap(fold) == {}
    with pytest.raises(ParameterError, match="not in the data"):
        assign_splits(rows, test_groups=["nobody"])


def test_warns_when_a_class_is_missing():
    rows = _rows(n_labels=2, per_label=10, n_groups=2)
    rows += [ManifestRow(path="/x/rare.wav", label="rare", group="g0")]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assign_splits(rows, valid=0.0, test=0.4, seed=0)
    assert any("no example of class" in str(x.message) and "rare" in str(x.message) for x in w)


def test_bad_arguments():
    rows = _rows()
    with pytest.raises(ParameterError, match="valid=0.6"):
        assign_splits(rows, valid=0.6, test=0.5)
    with pytest.raises(ParameterError, match=r"test=-0.1"):
        assign_splits(rows, test=-0.1)
    with pytest.raises(DataError, match="holdout"):
        assign_splits([rows[0].with_split("holdout")])
