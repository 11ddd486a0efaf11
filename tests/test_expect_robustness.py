"""Robustness matrix: condition parsing, deterministic corruption, the summary arithmetic, a small run."""

from __future__ import annotations

import numpy as np
import pytest

from roomtone.errors import ParameterError
from roomtone.expect.robustness import baseline_matrix, corrupt, make_transform, summarise


def test_summarise_drops_and_ratio():
    acc = np.array([[0.9, 0.5], [0.8, 0.7], [0.85, 0.75]])
    s = summarise(acc, train_conditions=["clean", "noise", "noise+room"], test_conditions=["clean", "all"])
    assert s["drop"] == pytest.approx({"clean": 0.4, "noise": 0.2, "noise+room": 0.15})
    assert s["drop_own"] == pytest.approx({"clean": 0.4, "noise": 0.1, "noise+room": 0.1})
    assert s["robust"] == "noise+room" and s["ratio"] == pytest.approx(0.375) and s["passes_half"]
    s2 = summarise(acc, train_conditions=["clean", "noise", "noise+room"], test_conditions=["clean", "all"],
                   robust="noise")
    assert s2["ratio"] == pytest.approx(0.5) and s2["passes_half"]
    assert "ratio" not in summarise(acc[:, :1], train_conditions=["clean", "noise", "x"], test_conditions=["clean"])
    # one model (the demo's): its drop, but no ratio against itself
    one = summarise(acc[2:], train_conditions=["all"], test_conditions=["clean", "all"], reference="all")
    assert one["drop"] == pytest.approx({"all": 0.1}) and "ratio" not in one


def test_condition_names():
    assert make_transform("clean", sr=8000, split="test") is None
    with pytest.raises(ParameterError, match="'wind'"):
        make_transform("noise+wind", sr=8000, split="test")


def test_fixed_snr_and_determinism():
    sr = 8000
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    tf = make_transform("noise_5db", sr=sr, split="test", seed=1)
    a = corrupt([x, x], tf, seed=3)
    b = corrupt([x, x], tf, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], a[1])  # one generator runs through the list
    n = a[0] - x
    snr = 10 * np.log10(np.mean(x**2) / np.mean(n**2))
    assert snr == pytest.approx(5.0, abs=1.0)


@pytest.mark.slow
def test_small_baseline_matrix():
    from test_recipe_events import make_clips

    from roomtone.expect.frontend import make_frontend

    waves, y, _ = make_clips(n_per_class=6)
    tr, te = np.arange(0, 8), np.arange(8, 12)
    res = baseline_matrix([waves[i] for i in tr], y[tr], [waves[i] for i in te], y[te], sr=8000,
                          frontend=make_frontend(sr=8000), train_conditions=("clean", "noise"),
                          test_conditions=("clean", "noise_0db"), copies=1)
    acc = np.array(res["accuracy"])
    assert acc.shape == (2, 2) and ((acc >= 0) & (acc <= 1)).all()
    assert acc[0, 0] == 1.0  # clicks vs hums are trivially separable when clean
    assert res["model"] == "quick baseline" and set(res["drop"]) == {"clean", "noise"}


@pytest.mark.slow
def test_deep_matrix_through_fit_and_evaluate(tmp_path):
    """Integration with roomtone.train: one optimizer step per condition, the matrix and runs on disk."""
    from test_expect_cli import write_prepared

    from roomtone.config import TrainConfig
    from roomtone.expect.robustness import deep_matrix, with_condition

    prep = write_prepared(tmp_path / "prep", n_per_class=6)
    cfg = TrainConfig(model="vgg_tiny", epochs=1, max_steps=1, batch_size=8, clip_seconds=1.0)
    assert with_condition(cfg, "all", "n", None).augment.condition == "all"
    assert with_condition(cfg, "clean", None, None).augment.condition is None
    assert with_condition(cfg, "noise+room", None, None).augment.condition == "noise+room"
    with pytest.raises(ParameterError, match="'noise\\+fog'"):
        with_condition(cfg, "noise+fog", None, None)
    res = deep_matrix(cfg, data_dir=prep, out_dir=tmp_path / "runs", train_conditions=("clean", "noise"),
                      test_conditions=("clean", "noise_0db"))
    assert np.array(res["accuracy"]).shape == (2, 2)
    assert (tmp_path / "runs" / "train_noise").is_dir() and (tmp_path / "runs" / "robustness.json").exists()
