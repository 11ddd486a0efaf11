"""Learning curves: stratified subsets, power-law fit and extrapolation."""

from __future__ import annotations

import numpy as np
import pytest

from roomtone.errors import ParameterError
from roomtone.expect.learning_curve import (
    baseline_learning_curve,
    fit_power_law,
    predict_accuracy,
    stratified_subset,
)


def test_power_law_recovers_parameters():
    n = np.array([50, 125, 250, 500, 1000], dtype=float)
    err = 2.0 * n ** -0.5 + 0.03
    law = fit_power_law(n, err)
    assert law["a"] == pytest.approx(2.0, rel=0.05)
    assert law["b"] == pytest.approx(0.5, rel=0.05)
    assert law["c"] == pytest.approx(0.03, abs=0.005)
    assert predict_accuracy(law, 4000) == pytest.approx(1 - (2.0 * 4000 ** -0.5 + 0.03), abs=0.005)
    two = fit_power_law(n[:2], err[:2])  # too few points for three parameters: pure power law
    assert two["c"] == 0.0 and two["b"] > 0


def test_stratified_subset():
    y = np.repeat([0, 1, 2], [100, 50, 10])
    s = stratified_subset(y, 0.1, seed=0)
    assert np.bincount(y[s]).tolist() == [10, 5, 1]
    np.testing.assert_array_equal(s, stratified_subset(y, 0.1, seed=0))
    assert not np.array_equal(s, stratified_subset(y, 0.1, seed=1))
    with pytest.raises(ParameterError, match="fraction=0"):
        stratified_subset(y, 0, seed=0)


def test_baseline_curve_grows_with_data():
    rng = np.random.default_rng(0)
    k, d, n = 5, 20, 1500
    means = rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    x = means[y] + 1.6 * rng.normal(size=(n, d))
    idx = rng.permutation(n)
    res = baseline_learning_curve(x, y, train=idx[:1000], test=idx[1000:], fractions=(0.02, 0.1, 0.3, 1.0))
    acc = [p["accuracy"] for p in res["points"]]
    assert [p["fraction"] for p in res["points"]] == [0.02, 0.1, 0.3, 1.0]
    assert acc[-1] > acc[0] + 0.05
    assert res["n_full"] == 1000 and res["gain_10x"] >= res["gain_2x"] >= -1e-9
    assert "doubling the data" in res["verdict"]


@pytest.mark.slow
def test_cnn_learning_curve_through_fit(tmp_path):
    from test_expect_cli import write_prepared

    from roomtone.config import TrainConfig
    from roomtone.expect.learning_curve import cnn_learning_curve
    from roomtone.expect.report import section_learning_curve

    prep = write_prepared(tmp_path / "prep", n_per_class=12)
    cfg = TrainConfig(model="vgg_tiny", epochs=1, max_steps=1, batch_size=8, clip_seconds=1.0)
    res = cnn_learning_curve(cfg, data_dir=prep, out_dir=tmp_path / "lc", fractions=(0.5, 1.0))
    assert res["model"] == "cnn" and [p["n_train"] for p in res["points"]] == [8, 18]  # 4.5 per class rounds to 4
    assert (tmp_path / "lc" / "frac_050" / "run").is_dir() and (tmp_path / "lc" / "learning_curve.json").exists()
    html = section_learning_curve([res, {**res, "model": "baseline"}])
    assert html.count("<table>") == 2 and html.count("<img") == 1
