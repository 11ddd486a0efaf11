"""The recipe: measured band -> sample rate, durations -> clip/windows, events -> depth/head, size -> steps;
one function is the only source of front-end defaults; evaluation decides per recording from its windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from roomtone.errors import ParameterError
from roomtone.features.defaults import frontend_defaults
from roomtone.prepare.dataset import load_prepared
from roomtone.recipe.measure import active_spectrum, band_of, class_bands
from roomtone.recipe.rules import STANDARD_RATES, clip_and_windows, recipe, steps_for, working_rate


def make_set(root: Path, *, sr: int, seconds, tones=(300.0, 700.0, 1500.0), per_split=(8, 2, 4), seed=0) -> Path:
    """A prepared folder of tone classes at ``sr``: each file a harmonic-free tone in faint noise.

    ``seconds``: (low, high) duration range of the files. Splits and groups are given in the manifest.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,label,group,split"]
    labels = [f"tone{int(f)}" for f in tones]
    for split, n in zip(("train", "valid", "test"), per_split, strict=True):
        for lab, f0 in zip(labels, tones, strict=True):
            for i in range(n):
                dur = rng.uniform(*seconds)
                t = np.arange(int(dur * sr)) / sr
                x = 0.3 * np.sin(2 * np.pi * f0 * rng.uniform(0.97, 1.03) * t) + 1e-4 * rng.standard_normal(t.size)
                p = root / f"{lab}_{split}_{i}.wav"
                sf.write(p, x.astype(np.float32), sr)
                lines.append(f"{p.name},{lab},{split}{i},{split}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (root / "prepare.json").write_text(json.dumps({"labels": sorted(labels), "sr": sr, "clip_seconds": None}))
    return root


def test_frontend_defaults_scale_with_the_rate():
    assert frontend_defaults(sr=8000) == {"sr": 8000, "n_fft": 512, "hop_length": 80, "n_mels": 64, "fmin": 0.0,
                                          "fmax": None}
    for sr in (16000, 22050):
        assert frontend_defaults(sr=sr)["n_fft"] == 1024
    for sr in (32000, 44100, 48000):
        d = frontend_defaults(sr=sr)
        assert d["n_fft"] == 2048 and d["hop_length"] == round(0.01 * sr)
    for sr in (8000, 11025, 16000, 44100, 48000):   # window between 32 and 64 ms
        assert 0.032 < frontend_defaults(sr=sr)["n_fft"] / sr <= 0.064
    with pytest.raises(ParameterError, match="sr=0"):
        frontend_defaults(sr=0)


def test_working_rate_rounds_up_and_never_exceeds_the_files():
    assert working_rate(3750.0, file_sr=8000) == 8000
    assert working_rate(5000.0, file_sr=48000) == 11025
    assert working_rate(7000.0, file_sr=48000) == 16000
    assert working_rate(9000.0, file_sr=16000) == 16000     # needs 18 kHz, files have 16 kHz
    assert working_rate(30000.0, file_sr=96000) == 96000    # above every standard rate: the files' own
    assert list(STANDARD_RATES) == sorted(STANDARD_RATES)


def test_band_of_a_tone_and_of_white_noise():
    sr = 16000
    t = np.arange(sr) / sr
    spec = active_spectrum(np.sin(2 * np.pi * 1000 * t), sr=sr)
    lo, hi = band_of(spec, sr=sr)
    assert 900 <= lo <= 1000 <= hi <= 1100
    noise = np.random.default_rng(0).standard_normal(4 * sr)
    lo, hi = band_of(active_spectrum(noise, sr=sr), sr=sr, fraction=0.9)
    assert lo == pytest.approx(0.05 * sr / 2, rel=0.1) and hi == pytest.approx(0.95 * sr / 2, rel=0.05)
    with pytest.raises(ParameterError, match="fraction"):
        band_of(spec, sr=sr, fraction=1.0)


def test_class_bands_ignore_quiet_frames():
    """A 2 kHz low-passed class stays low even with a -50 dB broadband tail between its events."""
    sr = 16000
    rng = np.random.default_rng(1)
    from scipy.signal import butter, sosfilt

    sos = butter(8, 2000, fs=sr, output="sos")
    waves = []
    for _ in range(4):
        x = 3e-3 * rng.standard_normal(2 * sr)            # broadband floor
        x[sr // 2: sr] += sosfilt(sos, rng.standard_normal(sr // 2))
        waves.append(x)
    bands = class_bands(waves, np.zeros(4, dtype=int), labels=["lp"], sr=sr)
    assert bands[0]["f_high"] < 2400 and bands[0]["n_clips"] == 4


def test_clip_and_windows_rules():
    short = {"min": 0.2, "p10": 0.3, "median": 0.5, "p90": 0.8, "p95": 0.93, "max": 2.0}
    clip, hop, why = clip_and_windows(short, pattern_s=0.4)
    assert (clip, hop) == (1.2, None) and "0.93" in why   # 1.25 x p95, rounded up
    long = {"min": 1.0, "p10": 3.7, "median": 7.0, "p90": 19.0, "p95": 25.0, "max": 39.0}
    clip, hop, _ = clip_and_windows(long, pattern_s=5.0)
    assert clip == 3.0 and hop == 1.5
    clip, hop, _ = clip_and_windows(long, pattern_s=1.2)
    assert clip == 1.2 and hop == pytest.approx(0.6)


def test_steps_grow_with_the_square_root_of_the_data():
    from roomtone.recipe.rules import MIN_STEPS, STEPS_PER_SQRT_EXAMPLE

    assert steps_for(1) == MIN_STEPS                        # the floor
    assert steps_for(2500) == 50 * STEPS_PER_SQRT_EXAMPLE
    assert steps_for(10000) == 2 * steps_for(2500)


def test_recipe_on_short_clips(tmp_path):
    data = make_set(tmp_path / "short", sr=16000, seconds=(0.4, 0.8))
    r = recipe(data)
    c = r.config
    assert c.frontend.sr == 8000                  # tones below 1.6 kHz: 8 kHz is plenty, files are 16 kHz
    fe = frontend_defaults(sr=8000)
    assert (c.frontend.n_fft, c.frontend.hop_length, c.frontend.n_mels) == (fe["n_fft"], fe["hop_length"], fe["n_mels"])
    assert 1500 < c.frontend.fmax < 4000          # the tones stop at ~1.5 kHz: the mel bands stop there too
    assert c.window_hop is None and 0.5 <= c.clip_seconds <= 1.25 * 0.8 + 0.1   # 1.25 x p95 of 0.4-0.8 s
    assert c.model_kwargs["head"] == "mean"       # steady tones fill their clips
    assert len(c.model_kwargs["channels"]) == len(c.model_kwargs["pool"]) >= 4
    assert c.max_steps == steps_for(30) and c.patience is None
    settings = [row["setting"] for row in r.table()]
    for key in ("frontend.sr", "clip_seconds", "model_kwargs.head", "max_steps, epochs", "balanced", "augment.condition"):
        assert key in settings
    assert all(row["reason"] and row["measured"] for row in r.table())
    assert recipe(data).config == c               # deterministic: no timing without a budget


def test_recipe_windows_long_recordings_and_records_overrides(tmp_path):
    data = make_set(tmp_path / "long", sr=8000, seconds=(8.0, 14.0), per_split=(6, 2, 2))
    r = recipe(data)
    assert r.config.window_hop is not None and r.config.window_hop == pytest.approx(r.config.clip_seconds / 2)
    r2 = r.with_overrides({"epochs": 2, "model_kwargs.head": "attention"})
    assert r2.config.epochs == 2 and r2.config.model_kwargs["head"] == "attention"
    assert r2.train_command(out="R").endswith("--set epochs=2 --set model_kwargs.head=attention")
    assert {"setting": "epochs", "value": 2, "measured": "given by the user", "reason": "override"} in r2.table()
    r2.to_yaml(tmp_path / "recipe.yaml")
    import yaml

    back = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    assert back["config"]["epochs"] == 2 and back["overrides"]["epochs"] == 2 and "train_durations" not in back["measurements"]


def test_a_model_override_drops_the_vgg_block_layout_where_the_model_builds_its_own(tmp_path):
    from roomtone.models import create_model

    data = make_set(tmp_path / "m", sr=8000, seconds=(0.8, 1.0), per_split=(3, 1, 1))
    r = recipe(data)
    kw = r.config.model_kwargs
    assert kw["pool_before_norm"] is True
    for name in ("effnet_m", "effnet_s"):
        c = r.with_overrides({"model": name}).config
        assert c.model == name and "pool_before_norm" not in c.model_kwargs and "block_convs" not in c.model_kwargs
        assert (c.model_kwargs["channels"], c.model_kwargs["head"]) == (kw["channels"], kw["head"])
        create_model(name, num_classes=3, **c.model_kwargs)        # builds: the recipe's layout applies
    assert r.with_overrides({"model": "vgg_wide"}).config.model_kwargs == kw      # still VGG blocks: kept
    r2 = r.with_overrides({"model": "effnet_m"})
    assert r2.train_command(out="R").endswith("--set model=effnet_m")  # replaying the line gives the same config
    bad = r.with_overrides({"model": "effnet_m", "model_kwargs.pool_before_norm": True}).config  # asked: refused
    with pytest.raises(ParameterError, match="EffNet builds its own stages"):
        create_model("effnet_m", num_classes=3, **bad.model_kwargs)
    with pytest.raises(ParameterError, match="not registered"):
        r.with_overrides({"model": "vgg_nope"})


def test_recipe_refuses_one_class(tmp_path):
    data = make_set(tmp_path / "one", sr=8000, seconds=(0.5, 0.6), tones=(500.0,))
    with pytest.raises(ParameterError, match="at least 2 classes"):
        recipe(data)


def test_recording_scores_average_window_log_probabilities():
    from roomtone.prepare.manifest import ManifestRow
    from roomtone.train.evaluate import recording_scores

    rows = [ManifestRow("a.wav", "x", start=0, end=1), ManifestRow("a.wav", "x", start=1, end=2),
            ManifestRow("a.wav", "x", start=2, end=3), ManifestRow("b.wav", "y", start=0, end=1)]
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 3.0]])
    y = torch.tensor([0, 0, 0, 1])
    logp, rec_y, names = recording_scores(rows, logits, y)
    assert names == ["a.wav", "b.wav"] and rec_y.tolist() == [0, 1]
    expect = torch.log_softmax(logits, 1)[:3].mean(0)
    assert torch.allclose(logp[0], expect) and logp.argmax(1).tolist() == [0, 1]
    assert recording_scores(rows[:1] + rows[3:], logits[[0, 3]], y[[0, 3]]) is None   # one row per file


def test_windowed_run_reports_recording_accuracy(tmp_path):
    from roomtone.train import evaluate, fit

    data = make_set(tmp_path / "rec", sr=8000, seconds=(7.0, 9.0), per_split=(3, 1, 2))
    cfg = recipe(data).config.replace(max_steps=6, epochs=2, model="vgg_tiny", **{"model_kwargs": {},
                                      "augment.condition": None})
    fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    m = evaluate(tmp_path / "run", out=tmp_path / "m.json")
    rec = m["recording"]
    assert rec["n"] == 6 and rec["n_windows"] == m["n"] > 6
    assert 0.0 <= m["recording_accuracy"] <= 1.0
    assert json.loads((tmp_path / "m.json").read_text())["recording_accuracy"] == m["recording_accuracy"]


def test_one_function_is_the_only_source_of_frontend_defaults(tmp_path, monkeypatch):
    """Changing frontend_defaults' constants changes expect's front end, the feature cache, train, design and the
    models' own defaults."""
    import roomtone.features.defaults as D
    from roomtone.config import TrainConfig
    from roomtone.expect.frontend import make_frontend
    from roomtone.features.cache import feature_config
    from roomtone.models import create_model
    from roomtone.train.run import model_config_of

    def snapshot():
        fe = make_frontend(sr=16000)
        return {"expect": (fe.n_fft if hasattr(fe, "n_fft") else fe.mel.n_fft, fe.mel.n_mels),
                "cache": (feature_config("log-mel", sr=16000)["params"]["n_fft"],
                          feature_config("log-mel", sr=16000)["params"]["n_mels"]),
                "train": tuple(model_config_of(TrainConfig(), num_classes=2, sr=16000)[k] for k in ("n_fft", "n_mels")),
                "design": (_design_defaults(16000)["n_fft"], _design_defaults(16000)["n_mels"]),
                "model": (create_model("vgg", num_classes=2, sr=16000).frontend.mel.n_fft,
                          create_model("vgg", num_classes=2, sr=16000).frontend.mel.n_mels)}

    before = snapshot()
    assert set(before.values()) == {(1024, 64)}
    monkeypatch.setattr(D, "N_MELS", 40)
    monkeypatch.setattr(D, "WINDOW_SECONDS", 0.032)
    after = snapshot()
    assert set(after.values()) == {(512, 40)}


def _design_defaults(sr: int) -> dict:
    from roomtone.cli.design import design_settings

    return design_settings(sr=sr, hop_length=None, n_fft=None, n_mels=None)


def test_train_without_config_uses_and_stores_the_recipe(tmp_path):
    """`roomtone train P --out R` measures the data, prints the choices, stores recipe.yaml; --set wins."""
    import yaml
    from typer.testing import CliRunner

    from roomtone.cli.main import build_app

    data = make_set(tmp_path / "d", sr=16000, seconds=(0.4, 0.8), per_split=(4, 1, 1))
    res = CliRunner().invoke(build_app(), ["train", str(data), "--out", str(tmp_path / "run"), "--set", "max_steps=2",
                                           "--set", "epochs=1", "--set", "augment.condition=null", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "recipe" in res.output and "frontend.sr" in res.output
    stored = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert stored["overrides"] == {"max_steps": 2, "epochs": 1, "augment.condition": None}
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["frontend"] == stored["config"]["frontend"] and cfg["frontend"]["sr"] == 8000
    assert cfg["max_steps"] == 2 and cfg["model_kwargs"] == stored["config"]["model_kwargs"]


def test_expect_report_and_trained_run_share_the_front_end(tmp_path):
    """expect analyses the recipe's front end, writes recipe.yaml and its table; the run trains on the same one."""
    import yaml

    from roomtone.expect.run import expect
    from roomtone.train import fit

    data = make_set(tmp_path / "d", sr=16000, seconds=(0.4, 0.8), per_split=(4, 1, 2))
    res = expect(data, tmp_path / "report", examples_per_class=0, fractions=(0.5, 1.0))
    analysed = json.loads((tmp_path / "report" / "results.json").read_text())["frontend"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Recipe: what to train" in html and f"roomtone train {data}" in html
    rec = yaml.safe_load((tmp_path / "report" / "recipe.yaml").read_text())
    cfg = res["recipe"].config.replace(max_steps=2, epochs=1)
    fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    trained = json.loads((tmp_path / "run" / "run.json").read_text())["model_config"]
    for key in ("sr", "n_fft", "hop_length", "n_mels"):
        assert analysed[key] == trained[key] == rec["config"]["frontend"][key], key
    assert float(analysed["fmin"]) == float(trained["fmin"])


def test_the_recipe_gives_enough_epochs_for_its_steps(tmp_path):
    from roomtone.train.data import batches, load_splits

    data = make_set(tmp_path / "e", sr=8000, seconds=(0.3, 0.4), per_split=(40, 10, 2))   # 120 train, 30 valid
    c = recipe(data).config
    splits, _ = load_splits(data, valid_fraction=c.valid_fraction, seed=c.seed)
    per_epoch = len(batches(list(range(len(splits["train"]))), c.batch_size))   # 3: valid rows do not train
    assert c.epochs * per_epoch >= c.max_steps                     # the loop reaches max_steps, not the epoch end


def test_budget_caps_the_steps_from_timed_steps(tmp_path):
    from roomtone.cli.train import parse_seconds
    from roomtone.recipe.budget import DEFAULT_BUDGET_S

    assert [parse_seconds(t) for t in ("300", "300s", "5m", "1.5h", "none", None)] == [300.0, 300.0, 300.0, 5400.0,
                                                                                          None, DEFAULT_BUDGET_S]
    with pytest.raises(ParameterError, match="budget='soon'"):
        parse_seconds("soon")
    data = make_set(tmp_path / "b", sr=8000, seconds=(0.4, 0.6), per_split=(3, 1, 1))
    r = recipe(data, budget_s=1e-3)
    assert r.config.max_steps == 1 and r.config.max_seconds == 1e-3   # the run keeps to the budget too
    assert any("capped by the" in row["reason"] and "s/step" in row["reason"] for row in r.table())
    assert recipe(data).config.max_seconds is None
    with pytest.raises(ParameterError, match="budget_s=0"):
        recipe(data, budget_s=0)


def test_budget_times_the_data_path_on_the_users_files(tmp_path, monkeypatch):
    from roomtone.recipe.budget import StepCost, data_seconds, step_cost

    cost = StepCost(model_s=0.02, data_s=0.01, valid_s=0.005, once_s=3.0)
    assert cost.per_step == pytest.approx(0.035) and cost.seconds(100) == pytest.approx(6.5)
    assert cost.steps_in(6.5 + 1e-9) == 100 and cost.steps_in(2.0) == 0  # the first decode alone fills 2 s
    data = make_set(tmp_path / "d", sr=8000, seconds=(0.4, 0.6), per_split=(5, 2, 1))
    cfg = recipe(data).config
    d = data_seconds(cfg, data, examples=4)
    assert (d.n_train, d.n_valid, d.timed) == (15, 6, 4)  # 5 per class x 3 classes; timed 4 of them
    assert d.per_example_s > 0 and d.first_decode_s >= 0
    assert data_seconds(cfg.replace(cache_audio=False), data, examples=4).first_decode_s == 0.0  # decoded each time
    from roomtone.prepare.dataset import AudioDataset

    fetched, fetch = [], AudioDataset.__getitems__
    monkeypatch.setattr(AudioDataset, "__getitems__", lambda self, idx: fetched.append(list(idx)) or fetch(self, idx))
    d3 = data_seconds(cfg.replace(batch_size=3), data, examples=4)
    warm, timed = fetched[0], fetched[1:]
    assert [len(b) for b in timed] == [3, 1, 3, 1]  # as the loader fetches: batches, first decode then cached
    assert timed[:2] == timed[2:] and len(set(sum(timed[:2], []))) == 4 == d3.timed
    assert warm and not set(warm) & set(sum(timed, []))  # the one-off first batch is other examples
    assert d3.setup_s > 0
    del fetched[:]
    d3.fetch(), d3.fetch(), d3.fetch()
    assert fetched == [timed[2], timed[3], timed[2]]   # between timed steps: the timed batches in turn, cached
    del fetched[:]
    c3 = step_cost(cfg.replace(batch_size=3), d3, num_classes=3)
    from roomtone.recipe.budget import TIMED_STEPS

    assert len(fetched) == 2 * (TIMED_STEPS + 1) and c3.float32_s > 0  # a batch before each step, both precisions
    c = step_cost(cfg, d, num_classes=3)
    assert c.data_s == pytest.approx(cfg.batch_size * d.per_example_s)
    assert c.float32_s > 0 and c.bfloat16_s > 0 and c.model_s == (c.bfloat16_s if c.amp else c.float32_s)
    assert c.valid_s == pytest.approx(c.float32_s * 6 / 15 / 3)  # float32 forward only, 6 valid per 15 train
    assert c.once_s == pytest.approx(d.first_decode_s * 21 + d.setup_s)
    tight = recipe(data, budget_s=1.0)
    assert tight.predicted_seconds > 0
    assert tight.predicted_seconds <= 1.0 or tight.config.max_steps == 1  # capped to fit (one step at least)
    assert recipe(data).predicted_seconds is None and tight.to_dict()["predicted_seconds"] == tight.predicted_seconds


def test_budget_takes_bfloat16_only_where_its_step_is_timed_faster(tmp_path, monkeypatch):
    import roomtone.models.compute as compute
    from roomtone.recipe.budget import AMP_MIN_GAIN

    data = make_set(tmp_path / "a", sr=8000, seconds=(0.4, 0.6), per_split=(3, 1, 1))
    for bf16_s, amp in ((0.1 / (AMP_MIN_GAIN + 0.05), "on"), (0.1 / (AMP_MIN_GAIN - 0.05), "auto")):
        def step_seconds(model, *, autocast=None, _bf16_s=bf16_s, **kw):
            return 0.1 if autocast is None else _bf16_s
        monkeypatch.setattr(compute, "step_seconds", step_seconds)
        r = recipe(data, budget_s=1e6)
        row = next(x for x in r.table() if x["setting"] == "amp")
        assert r.config.amp == amp and row["value"] == amp, bf16_s
        assert f"100 ms in float32, {1000 * bf16_s:.0f} ms under bfloat16" in row["measured"]
        assert ("in bfloat16" in next(x for x in r.table() if x["setting"].startswith("max_steps"))["reason"]) == (
            amp == "on")
    assert recipe(data).config.amp == "auto"     # no budget: nothing timed, the same recipe on every machine


def test_budget_takes_a_lighter_size_before_cutting_the_steps(tmp_path, monkeypatch):
    import roomtone.recipe.budget as budget
    from roomtone.recipe.rules import MIN_STEP_SHARE
    from roomtone.train import fit

    data = make_set(tmp_path / "b", sr=16000, seconds=(0.8, 1.0), per_split=(3, 1, 1))
    full = recipe(data).config
    steps, fe = full.max_steps, full.frontend

    def step_cost(cfg, data, *, num_classes, seed=0):  # cost ~ frames x bands x width^2, 1 s at the full size
        f, c = cfg.frontend, cfg.model_kwargs["channels"][0] / full.model_kwargs["channels"][0]
        return budget.StepCost(model_s=(fe.hop_length / f.hop_length) * (f.n_mels / fe.n_mels) * c * c,
                               data_s=0.0, valid_s=0.0, once_s=0.0)

    monkeypatch.setattr(budget, "step_cost", step_cost)
    kept = recipe(data, budget_s=(MIN_STEP_SHARE + 0.1) * steps).config   # the full size runs 60 % of its steps
    assert kept.frontend == fe and kept.max_steps == int((MIN_STEP_SHARE + 0.1) * steps)
    from roomtone.recipe.rules import SIZES

    w = round(full.model_kwargs["channels"][0] * SIZES[1][1]) / full.model_kwargs["channels"][0]
    per = 0.5 * w * w                             # channels x0.45 and mels x0.5: s/step of the fake cost
    r = recipe(data, budget_s=0.05 * steps)       # full: 5 % of the steps; the lighter size: >= 50 %, capped
    c = r.config
    assert c.frontend.hop_length == fe.hop_length and c.frontend.n_mels == fe.n_mels // 2
    assert c.model_kwargs["channels"] == [round(x * SIZES[1][1]) for x in full.model_kwargs["channels"]]
    assert full.specaugment.freq_masks > 0 and full.specaugment.time_masks > 0      # the full size keeps its masks
    assert (c.specaugment.freq_masks, c.specaugment.time_masks) == (0, 0)          # a lighter size drops them...
    assert c.specaugment.freq_stretch == full.specaugment.freq_stretch > 0        # ...and keeps the stretch
    assert c.max_steps == int(0.05 * steps / per) < steps
    row = next(x for x in r.table() if x["setting"].startswith("frontend.hop_length, n_mels"))
    assert row["value"].startswith(f"hop 10 ms, {fe.n_mels // 2} mels") and "s/step" in row["measured"]
    blocks = len(c.model_kwargs["channels"])
    assert c.model_kwargs["block_convs"] == [1] + [2] * (blocks - 1)
    assert row["value"].endswith("one conv in block 1, no masks") and "no SpecAugment masks" in row["reason"]
    assert "block_convs" not in kept.model_kwargs
    tiny = recipe(data, budget_s=0.01 * steps).config          # nothing fits: the lightest size, steps capped
    assert tiny.frontend.hop_length == 2 * fe.hop_length and tiny.frontend.n_mels == fe.n_mels // 2
    assert (tiny.specaugment.freq_masks, tiny.specaugment.time_masks) == (0, 0)
    assert tiny.max_steps == int(0.01 * steps / (0.5 * per))
    fit(tiny.replace(max_steps=2, epochs=1), data_dir=data, out_dir=tmp_path / "run", progress=False)
    trained = json.loads((tmp_path / "run" / "run.json").read_text())["model_config"]
    assert (trained["hop_length"], trained["n_mels"]) == (2 * fe.hop_length, fe.n_mels // 2)
    assert trained["block_convs"][0] == 1 and trained["pool_before_norm"] is True  # every size pools before BN


def test_transfer_choice_follows_the_probe_against_the_baseline():
    from roomtone.recipe.rules import SMALL_DATA, TRANSFER_ERROR_RATIO, transfer_choice

    def point(name, probe, base=0.6):
        return {"backbone": name, "probe_accuracy": probe, "baseline_accuracy": base, "n": 120, "folds": 5}

    assert "enough data" in transfer_choice(SMALL_DATA, points=[point("aisfx", 1.0)]).reason
    assert transfer_choice(SMALL_DATA, points=[point("aisfx", 1.0)]).value is None
    assert "roomtone pretrained fetch" in transfer_choice(50, points=[]).reason
    edge = 1 - TRANSFER_ERROR_RATIO * 0.4  # exactly the allowed share of the baseline's 40 % errors
    c = transfer_choice(50, points=[point("aisfx", 0.7), point("speech-embedding", edge)])
    assert c.value == "speech-embedding" and "aisfx probe 70.0%" in c.measured and "quick baseline 60.0%" in c.measured
    assert transfer_choice(50, points=[point("speech-embedding", edge - 0.01)]).value is None
    assert transfer_choice(50, points=[point("speech-embedding", 1.0, base=1.0)]).value is None  # nothing to gain
    with pytest.raises(ParameterError, match="domain='birds'"):
        transfer_choice(50, points=[], domain="birds")


@pytest.fixture
def random_speech_embedding(tmp_path, monkeypatch):
    """A cache holding speech-embedding weights (random, seeded): the recipe sees a backbone it may try."""
    from safetensors.torch import save_file

    from roomtone.models import create_model
    from roomtone.models.pretrained import weights_path

    torch.manual_seed(0)
    dest = weights_path("speech-embedding", cache_dir=tmp_path / "cache")
    dest.parent.mkdir(parents=True)
    state = create_model("speech-embedding", num_classes=1).backbone.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
    monkeypatch.setenv("ROOMTONE_CACHE", str(tmp_path / "cache"))


def test_recipe_measures_a_transfer_point_on_the_training_rows(tmp_path, random_speech_embedding):
    from roomtone.recipe.rules import TRANSFER_ERROR_RATIO

    data = make_set(tmp_path / "d", sr=16000, seconds=(0.5, 0.7), per_split=(6, 2, 3))
    r = recipe(data)
    [p] = r.measurements["transfer"]
    assert p["backbone"] == "speech-embedding" and p["n"] == 3 * (6 + 2) and p["folds"] == 5  # test rows unseen
    assert 0 <= p["probe_accuracy"] <= 1 and 0 <= p["baseline_accuracy"] <= 1
    base_err, probe_err = 1 - p["baseline_accuracy"], 1 - p["probe_accuracy"]
    chose = probe_err <= TRANSFER_ERROR_RATIO * base_err and probe_err < base_err
    assert (r.config.pretrained == "speech-embedding") == chose
    assert recipe(data).measurements["transfer"] == r.measurements["transfer"]  # deterministic


def test_a_transfer_recipe_trains_the_probe(tmp_path, random_speech_embedding):
    from roomtone.recipe.measure import measure
    from roomtone.train import evaluate, fit

    data = make_set(tmp_path / "d", sr=16000, seconds=(0.5, 0.7), per_split=(4, 2, 2))
    rows, meta = load_prepared(data)
    m = measure(rows, labels=list(meta["labels"]), sr=16000)
    m["transfer"] = [{"backbone": "speech-embedding", "probe_accuracy": 0.95, "baseline_accuracy": 0.5, "n": 18,
                      "folds": 5}]
    r = recipe(data, measurements=m)
    c = r.config
    assert (c.pretrained, c.mode, c.augment.condition, c.specaugment.freq_masks) == ("speech-embedding", "probe", None, 0)
    assert [row["setting"] for row in r.table()][-1] == "pretrained" and "speech-embedding probe" in r.summary()
    assert not any(row["setting"].startswith("model_kwargs") for row in r.table())
    fit(r.config.replace(epochs=2), data_dir=data, out_dir=tmp_path / "run", progress=False)
    assert evaluate(tmp_path / "run", split="test")["n"] == 6


def test_expect_draws_the_probe_curve_of_each_transfer_point(tmp_path, random_speech_embedding):
    from roomtone.expect.run import expect

    data = make_set(tmp_path / "d", sr=16000, seconds=(0.5, 0.7), per_split=(6, 2, 3))
    res = expect(data, tmp_path / "report", simulate=None, examples_per_class=0, fractions=(0.5, 1.0))
    [curve] = res["transfer_curves"]
    assert curve["model"] == "speech-embedding probe"
    assert [p["n_train"] for p in curve["points"]] == [p["n_train"] for p in res["learning_curve"]["points"]]
    html = Path(res["report"]).read_text()
    assert "speech-embedding probe" in html and "quick baseline" in html


def test_no_transfer_keeps_the_scratch_recipe(tmp_path, random_speech_embedding):
    data = make_set(tmp_path / "d", sr=16000, seconds=(0.5, 0.7), per_split=(4, 2, 2))
    r = recipe(data, transfer=False)
    assert r.config.pretrained is None and r.measurements["transfer"] == [] and r.config.model == "vgg"
    assert "--no-transfer" in r.train_command() and "--no-transfer" in r.with_overrides({"epochs": 2}).train_command()


def test_expect_analyses_the_scratch_log_mel_when_the_recipe_picks_a_probe(tmp_path, random_speech_embedding,
                                                                            monkeypatch):
    import roomtone.recipe.rules as rules
    from roomtone.expect.run import expect

    point = {"backbone": "speech-embedding", "probe_accuracy": 0.99, "baseline_accuracy": 0.5, "n": 24, "folds": 5}
    monkeypatch.setattr(rules, "_transfer_points", lambda *a, **kw: [point])
    data = make_set(tmp_path / "d", sr=16000, seconds=(0.5, 0.7), per_split=(6, 2, 3))
    res = expect(data, tmp_path / "report", simulate=None, examples_per_class=0, fractions=(0.5, 1.0))
    assert res["recipe"].config.pretrained == "speech-embedding"
    scratch = recipe(data, transfer=False).config.frontend
    assert res["examples"] == [] and res["audit"]["summary"]["analysis sample rate (Hz)"] == scratch.sr
    assert [c["model"] for c in res["transfer_curves"]] == ["speech-embedding probe"]


def test_small_data_counts_the_rows_the_model_is_fitted_on(tmp_path, monkeypatch):
    import roomtone.recipe.rules as rules

    seen = {}

    def no_points(*args, n_fit, **kw):
        seen["n_fit"] = n_fit
        return []

    monkeypatch.setattr(rules, "_transfer_points", no_points)
    data = make_set(tmp_path / "d", sr=8000, seconds=(0.4, 0.6), per_split=(4, 2, 2))
    r = recipe(data)
    assert seen["n_fit"] == 3 * 4  # the train split only: valid rows select the epoch, test rows are never seen
    assert r.measurements["n_train"] == 3 * (4 + 2)
