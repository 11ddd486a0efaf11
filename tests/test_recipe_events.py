"""Event duration / sparsity analysis on a synthetic dataset with known event lengths."""

from __future__ import annotations

import numpy as np
import pytest

from roomtone.errors import ParameterError
from roomtone.recipe.events import (
    active_mask,
    analyse_events,
    clip_events,
    frame_energy_db,
    recommend_pooling,
)

CLICK_S, HUM_S = 0.1, 2.0


def make_clips(*, sr: int = 8000, n_per_class: int = 6, seed: int = 0):
    """Class 0 'click': 2 noise bursts of 0.1 s in a 3 s clip; class 1 'hum': a 2 s harmonic hum in 2.5 s.

    Both over a -60 dB noise floor, random positions. Returns ``(waves, y, labels)``.
    """
    rng = np.random.default_rng(seed)
    waves, y = [], []
    n_click, n_hum = int(CLICK_S * sr), int(HUM_S * sr)
    for _ in range(n_per_class):
        w = 0.001 * rng.standard_normal(3 * sr)
        for s in (0.3, 1.6):
            a = int((s + rng.uniform(0, 0.8)) * sr)
            w[a:a + n_click] += rng.uniform(0.2, 0.6) * rng.standard_normal(n_click)
        waves.append(w.astype(np.float32))
        y.append(0)
        t = np.arange(n_hum) / sr
        f0 = rng.uniform(90, 140)
        hum = rng.uniform(0.1, 0.4) * (np.sin(2 * np.pi * f0 * t) + 0.4 * np.sin(2 * np.pi * 2 * f0 * t + 1.0))
        w = 0.001 * rng.standard_normal(int(2.5 * sr))
        a = int(rng.uniform(0, 0.5) * sr)
        w[a:a + n_hum] += hum
        waves.append(w.astype(np.float32))
        y.append(1)
    return waves, np.array(y), ["click", "hum"]


def test_recovers_known_lengths_and_pooling():
    waves, y, labels = make_clips()
    res = analyse_events(waves, y, labels=labels, sr=8000)
    click, hum = res["per_class"]
    assert click["n_events"] == 2 * click["n_clips"]
    assert abs(click["median_s"] - CLICK_S) <= 0.2 * CLICK_S
    assert all(abs(d - CLICK_S) <= 0.2 * CLICK_S for d in click["durations"])
    assert abs(hum["median_s"] - HUM_S) <= 0.2 * HUM_S
    assert click["active_fraction"] == pytest.approx(2 * CLICK_S / 3.0, rel=0.2)
    assert hum["active_fraction"] == pytest.approx(HUM_S / 2.5, rel=0.2)
    assert click["pooling"] in ("max", "autopool")
    assert hum["pooling"] == "mean"
    assert res["pooling"] == "max"  # one sparse class decides for the task
    assert CLICK_S <= click["rf_s"] <= 0.2
    assert res["recommended_rf_s"] == pytest.approx(hum["rf_s"])


def test_model_receptive_field_check():
    waves, y, labels = make_clips(n_per_class=2)
    short = analyse_events(waves, y, labels=labels, sr=8000, model_rf_s=0.5)
    assert short["rf_check"].startswith("too short") and "0.50 s" in short["rf_check"]
    ok = analyse_events(waves, y, labels=labels, sr=8000, model_rf_s=5.0)
    assert ok["rf_check"].startswith("ok")


def test_energy_of_a_sine_and_stationary_clip():
    sr = 8000
    t = np.arange(sr) / sr
    e = frame_energy_db(0.5 * np.sin(2 * np.pi * 440 * t), sr=sr)
    # mean power of a sine = A^2 / 2; Hann-weighted average over whole periods keeps it (within ripple)
    assert np.median(e) == pytest.approx(10 * np.log10(0.125), abs=0.3)
    ev = clip_events(0.5 * np.sin(2 * np.pi * 440 * t), sr=sr)
    assert ev == {"durations": [1.0], "active_fraction": 1.0, "clip_s": 1.0}
    assert recommend_pooling(0.1) == "max" and recommend_pooling(0.45) == "autopool" and recommend_pooling(0.9) == "mean"


def test_gap_bridging():
    e = np.full(100, -60.0)
    e[10:20] = 0.0
    e[22:30] = 0.0  # a 2-frame gap, bridged when min_gap covers it
    assert active_mask(e, hop_s=0.005, min_gap_s=0.0)[20:22].sum() == 0
    assert active_mask(e, hop_s=0.005, min_gap_s=0.02)[10:30].all()


def test_errors():
    with pytest.raises(ParameterError, match="hop_s"):
        frame_energy_db(np.zeros(100), sr=8000, hop_s=0.0)
    with pytest.raises(ParameterError, match="at least one clip"):
        analyse_events([], np.array([]), labels=["a"], sr=8000)


def test_impulsive_clip_keeps_its_short_events_and_blips_beside_long_events_go():
    """Clicks of 2 ms, 0.3 s apart: each is an event (not 'no events'); next to a 0.5 s tone, one such
    click is a blip and does not count."""
    sr = 8000
    rng = np.random.default_rng(0)
    clicks = 0.001 * rng.standard_normal(sr)
    for a in (0.1, 0.4, 0.7):
        clicks[int(a * sr):int(a * sr) + 16] += 0.5
    ev = clip_events(clicks.astype(np.float32), sr=sr)
    assert len(ev["durations"]) == 3 and all(d < 0.02 for d in ev["durations"])
    tone = 0.001 * rng.standard_normal(sr)
    tone[2000:6000] += 0.3 * np.sin(2 * np.pi * 440 * np.arange(4000) / sr)
    tone[7000:7016] += 0.5
    ev = clip_events(tone.astype(np.float32), sr=sr)
    assert len(ev["durations"]) == 1 and ev["durations"][0] == pytest.approx(0.5, abs=0.02)
