"""Evaluate: metric keys vs scikit-learn, confusion PNG + JSON, corruption from the test banks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_train import make_tones, tiny_config

from roomtone.train.metrics import classification_metrics


def test_metrics_match_sklearn():
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    p[p == 3] = 2  # class 3 never predicted: precision undefined -> 0
    labels = ["a", "b", "c", "d"]
    m = classification_metrics(y, p, labels=labels)
    assert m["accuracy"] == pytest.approx((y == p).mean())
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", labels=range(4), zero_division=0))
    pr, rc, _, sup = precision_recall_fscore_support(y, p, labels=range(4), zero_division=0)
    for i, lab in enumerate(labels):
        assert m["per_class"][lab]["precision"] == pytest.approx(pr[i])
        assert m["per_class"][lab]["recall"] == pytest.approx(rc[i])
        assert m["per_class"][lab]["support"] == sup[i]
    assert m["confusion_matrix"] == confusion_matrix(y, p, labels=range(4)).tolist()


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    from roomtone.train import fit

    root = tmp_path_factory.mktemp("eval")
    data = make_tones(root / "data", per_class=(12, 3, 6))
    fit(tiny_config(epochs=4, mixup=0.0, lr=1e-2, checkpoint_every=0), data_dir=data, out_dir=root / "run",
        progress=False)
    return root / "run", data


def test_evaluate_writes_json_and_png(tone_run, tmp_path):
    from roomtone.train import evaluate

    run, data = tone_run
    out = tmp_path / "m.json"
    m = evaluate(run, data_dir=data, split="test", out=out)
    disk = json.loads(out.read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "labels"):
        assert key in disk
    assert disk["labels"] == ["high", "low", "mid"] and np.sum(disk["confusion_matrix"]) == 18
    assert (tmp_path / "m_confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert m["accuracy"] == disk["accuracy"]


def test_evaluate_corrupt_uses_test_banks_and_is_seeded(tone_run, noise_dir):
    from roomtone.train import evaluate

    run, data = tone_run
    clean = evaluate(run, data_dir=data, split="test")
    a = evaluate(run, data_dir=data, split="test", corrupt="noise", noise=noise_dir, seed=3)
    b = evaluate(run, data_dir=data, split="test", corrupt="noise", noise=noise_dir, seed=3)
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["corrupt"] == "noise"
    assert clean["corrupt"] is None
    both = evaluate(run, data_dir=data, split="test", corrupt="mic+noise", noise=noise_dir, seed=3)
    assert both["corrupt"] == "mic+noise" and sum(map(sum, both["confusion_matrix"])) == sum(map(sum, a["confusion_matrix"]))


def test_evaluate_corrupt_callable_changes_predictions(tone_run):
    import torch

    from roomtone.train import evaluate

    run, data = tone_run

    def silence(x, generator=None):
        return torch.zeros_like(x)

    m = evaluate(run, data_dir=data, split="test", corrupt=silence)
    assert len({int(np.argmax(row)) for row in np.asarray(m["confusion_matrix"]).T}) <= 3
    assert sum(1 for col in np.asarray(m["confusion_matrix"]).sum(0) if col > 0) == 1  # one constant guess


def test_evaluate_bad_args(tone_run):
    from roomtone.errors import ParameterError
    from roomtone.train import evaluate

    run, data = tone_run
    with pytest.raises(ParameterError, match="split='dev'"):
        evaluate(run, data_dir=data, split="dev")
    with pytest.raises(ParameterError, match="corrupt='fog'"):
        evaluate(run, data_dir=data, corrupt="fog")
