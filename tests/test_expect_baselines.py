"""Quick baselines: chance levels, grouped CV, per-class scores, confused pairs; FSDD official split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from roomtone.errors import DataError
from roomtone.expect.baselines import chance_levels, confused_pairs, quick_baseline
from roomtone.expect.frontend import make_frontend
from roomtone.features.summary import feature_matrix, grouped_cv_predict, logmel_of, summary_features


def test_chance_levels():
    c = chance_levels(np.array([0, 0, 0, 1, 2]), np.array([0, 1, 1, 2]), n_classes=4)
    assert c == {"majority_class": 0, "majority": 0.25, "uniform": 0.25}
    with pytest.raises(DataError):
        chance_levels(np.array([]), np.array([1]), n_classes=2)


def test_confused_pairs_both_directions():
    cm = np.array([[8, 2, 0], [3, 7, 0], [0, 1, 9]])
    pairs = confused_pairs(cm, labels=["a", "b", "c"], top=2)
    assert pairs[0] == {"a": "a", "b": "b", "errors": 5, "a_as_b": 2, "b_as_a": 3, "share": 0.25}
    assert (pairs[1]["a"], pairs[1]["b"], pairs[1]["errors"]) == ("b", "c", 1)


def test_grouped_cv_does_not_leak_groups():
    # Each group has a fingerprint feature and one random label: memorising groups works only if a
    # group straddles train and test. Grouped CV must land near chance, plain (per-row groups) near 100%.
    rng = np.random.default_rng(0)
    n_groups, per = 40, 10
    glabel = rng.permutation(np.tile([0, 1], n_groups // 2))
    groups = np.repeat(np.arange(n_groups), per)
    x = np.eye(n_groups)[groups] + 0.05 * rng.normal(size=(n_groups * per, n_groups))
    y = glabel[groups]
    grouped, k = grouped_cv_predict(x, y, groups.astype(str), n_splits=5)
    plain, _ = grouped_cv_predict(x, y, np.arange(len(y)).astype(str), n_splits=5)
    assert k == 5
    assert np.mean(plain == y) > 0.95
    assert np.mean(grouped == y) < 0.75


def test_summary_features_use_the_mfcc_of_the_logmel():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    lm = rng.normal(-40, 10, size=(40, 57)).astype(np.float32)
    f = summary_features(lm)
    assert f.shape == (2 * 40 + 6 * 13,)
    mf = librosa.feature.mfcc(S=lm, n_mfcc=13)
    np.testing.assert_allclose(f[80:93], mf.mean(axis=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(f[:40], lm.mean(axis=1), rtol=1e-5)
    assert not summary_features(np.zeros((40, 0))).any()


@pytest.mark.data
def test_fsdd_official_split(fsdd_dir: Path):
    """FSDD: takes 0-4 of every speaker/digit are the official test set; the baseline must reach >= 80%."""
    from roomtone.expect.data import load_waveforms
    from roomtone.prepare.manifest import ManifestRow

    rows = []
    for p in sorted(fsdd_dir.glob("*.wav")):
        digit, speaker, take = p.stem.split("_")
        rows.append(ManifestRow(str(p), digit, speaker, "test" if int(take) < 5 else "train"))
    waves, errors = load_waveforms(rows, sr=8000)
    assert not errors
    x = feature_matrix(logmel_of(waves, frontend=make_frontend(sr=8000)))
    y = np.array([int(r.label) for r in rows])
    res = quick_baseline(x, y, labels=[str(i) for i in range(10)], groups=np.array([r.group for r in rows]),
                         splits=np.array([r.split for r in rows]))
    h = res["holdout"]
    assert h["n_test"] == 300 and h["n_train"] == 2700
    assert h["accuracy"] >= 0.80, h["accuracy"]
    assert h["chance"]["majority"] == pytest.approx(0.1)
    assert len(h["per_class"]) == 10 and h["macro_f1"] >= 0.8
    # leave-speakers-out is harder but still far above chance
    assert res["grouped_cv"]["n_groups"] == 6 and res["grouped_cv"]["accuracy"] > 0.4
