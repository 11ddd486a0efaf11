"""Fit loop: config YAML round trip, determinism, kill -9 mid-epoch + resume == uninterrupted, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from roomtone.config import TrainConfig
from roomtone.errors import ParameterError

SR = 8000


def make_tones(root: Path, *, per_class=(12, 3, 3), seconds=0.5, seed=0) -> Path:
    """A prepared folder of 3 tone classes (500/1000/2000 Hz) with jitter and noise; splits given."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,label,group,split,start,end"]
    for split, n in zip(("train", "valid", "test"), per_class, strict=False):
        for label, f0 in (("low", 500.0), ("mid", 1000.0), ("high", 2000.0)):
            for i in range(n):
                t = np.arange(int(seconds * SR)) / SR
                on = rng.uniform(0.0, 0.2)
                x = 0.3 * np.sin(2 * np.pi * f0 * rng.uniform(0.95, 1.05) * t) * ((t > on) & (t < on + 0.25))
                x = x + 0.02 * rng.standard_normal(t.size)
                p = root / f"{label}_{split}_{i}.wav"
                sf.write(p, x.astype(np.float32), SR)
                lines.append(f"{p.name},{label},{split}{i % 3},{split},,")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (root / "prepare.json").write_text(json.dumps({"labels": ["high", "low", "mid"], "sr": SR, "clip_seconds": seconds}))
    return root


def tiny_config(**kw) -> TrainConfig:
    base = dict(model="vgg_tiny", augment={"condition": None}, frontend={"sr": SR, "n_fft": 256, "hop_length": 64, "n_mels": 32},
                clip_seconds=0.5, epochs=3, batch_size=6, lr=5e-3, patience=None, checkpoint_every=4,
                mixup=0.2, specaugment={"freq_masks": 1, "freq_width": 4, "time_masks": 1, "time_width": 5})
    base.update(kw)
    return TrainConfig(**base)


def test_config_yaml_round_trip_and_errors(tmp_path):
    cfg = tiny_config(augment={"condition": "noise", "snr_db": [5, 10]})
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    back = TrainConfig.from_yaml(path)
    assert back == cfg and back.augment.snr_db == (5, 10)
    assert cfg.replace(**{"frontend.n_mels": 40, "epochs": 2}).frontend.n_mels == 40
    with pytest.raises(ParameterError, match="unknown field"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ParameterError, match="schedule='linear'"):
        TrainConfig(schedule="linear")
    with pytest.raises(ParameterError, match="mode='full'"):
        TrainConfig(mode="full")


_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from roomtone.config import TrainConfig
    from roomtone.train import fit
    data, out, cfg_path, kill_at, resume = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
    if kill_at > 0:
        orig, count = torch.optim.AdamW.step, [0]
        def step(self, *a, **k):
            r = orig(self, *a, **k)
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return r
        torch.optim.AdamW.step = step
    fit(TrainConfig.from_yaml(cfg_path), data_dir=data, out_dir=out, resume=resume, progress=False)
""")


def _run(tmp_path, data, out, cfg_path, kill_at=0, resume=False):
    script = tmp_path / "fit_script.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROOMTONE_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, str(script), str(data), str(out), str(cfg_path), str(kill_at),
                           "1" if resume else "0"], env=env, capture_output=True, text=True, timeout=300)


def _records(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time_s"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def random_backbone_cache(cache: Path, name: str = "speech-embedding") -> Path:
    """A cache holding ``name``'s backbone with random (seeded) weights: transfer runs without a download."""
    from safetensors.torch import save_file

    from roomtone.models import create_model
    from roomtone.models.pretrained import weights_path

    dest = weights_path(name, cache_dir=cache)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        state = create_model(name, num_classes=1).backbone.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
    return dest


def mode_config(mode: str) -> TrainConfig:
    """tiny_config for ``scratch`` (``ema``: with a weight average), or the same loop settings on the
    speech-embedding backbone."""
    if mode in ("scratch", "ema"):
        return tiny_config(ema=0.9 if mode == "ema" else 0.0)
    from roomtone.config import PROBE_OVERRIDES

    cfg = tiny_config(model=TrainConfig.model, frontend={}, pretrained="speech-embedding", mode=mode,
                      model_kwargs={"pad_seconds": 0.1})
    return cfg.replace(**PROBE_OVERRIDES) if mode == "probe" else cfg


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["scratch", "ema", "finetune", "probe"])
def test_kill9_mid_epoch_then_resume_matches_uninterrupted(tmp_path, mode):
    data = make_tones(tmp_path / "data")
    random_backbone_cache(tmp_path / "cache")
    cfg = mode_config(mode)
    cfg_path = tmp_path / "cfg.yaml"
    cfg.to_yaml(cfg_path)
    # 36 train clips / batch 6 = 6 steps per epoch; checkpoints every 4 steps; killed after step 11
    # (epoch 2, step 5): the last checkpoint is step 8, so steps 9-11 are lost and redone.
    full = _run(tmp_path, data, tmp_path / "full", cfg_path)
    assert full.returncode == 0, full.stderr[-2000:]
    killed = _run(tmp_path, data, tmp_path / "resumed", cfg_path, kill_at=11)
    assert killed.returncode == -signal.SIGKILL
    partial = _records(tmp_path / "resumed")
    assert [r["epoch"] for r in partial] == [1]
    ck = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert ck["state"]["epoch"] == 1 and ck["state"]["step_in_epoch"] == 2 and ck["state"]["global_step"] == 8
    resumed = _run(tmp_path, data, tmp_path / "resumed", cfg_path, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _records(tmp_path / "resumed") == _records(tmp_path / "full")
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_fit_writes_run_and_is_deterministic(tmp_path):
    from roomtone.train import fit, load_run, read_metrics

    data = make_tones(tmp_path / "data")
    cfg = tiny_config(epochs=2, schedule="cosine", balanced=True)
    s1 = fit(cfg, data_dir=data, out_dir=tmp_path / "a", progress=False)
    s2 = fit(cfg, data_dir=data, out_dir=tmp_path / "b", progress=False)
    for name in ("config.yaml", "run.json", "best.pt", "last.pt", "metrics.jsonl"):
        assert (tmp_path / "a" / name).exists(), name
    ra, rb = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert len(ra) == 2 and set(ra[0]) >= {"epoch", "train_loss", "valid_accuracy", "valid_macro_f1", "lr"}
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in ra] == \
           [{k: v for k, v in r.items() if k != "time_s"} for r in rb]
    assert s1["best_epoch"] == s2["best_epoch"]
    assert TrainConfig.from_yaml(tmp_path / "a" / "config.yaml") == cfg
    model, labels, cfg2 = load_run(tmp_path / "a")
    assert labels == ["high", "low", "mid"] and not model.training and cfg2 == cfg
    with pytest.raises(ParameterError, match="already holds a run"):
        fit(cfg, data_dir=data, out_dir=tmp_path / "a", progress=False)


def test_bfloat16_autocast_on_a_cpu_trains_deterministically(tmp_path):
    from roomtone.train import fit, load_run

    data = make_tones(tmp_path / "data")
    cfg = tiny_config(epochs=1, amp="on", device="cpu")
    assert fit(cfg, data_dir=data, out_dir=tmp_path / "a", progress=False)["precision"] == "bfloat16"
    fit(cfg, data_dir=data, out_dir=tmp_path / "b", progress=False)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a) and all(v.dtype != torch.bfloat16 for v in a.values())
    fp32 = tiny_config(epochs=1, amp="off", device="cpu")
    assert fit(fp32, data_dir=data, out_dir=tmp_path / "c", progress=False)["precision"] == "float32"
    c = torch.load(tmp_path / "c" / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())  # bfloat16 did run
    model, _, _ = load_run(tmp_path / "a")
    assert model(torch.zeros(1, 4000)).dtype == torch.float32   # the trained model predicts in float32


def test_fit_learns_tones_and_stops_early(tmp_path):
    from roomtone.train import evaluate, fit

    data = make_tones(tmp_path / "data", per_class=(16, 4, 6))
    cfg = tiny_config(epochs=10, mixup=0.0, patience=3, lr=1e-2, checkpoint_every=0)
    s = fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    m = evaluate(tmp_path / "run", split="test")
    assert m["accuracy"] >= 0.8, m
    assert s["stopped_early"] == (s["epochs_run"] < 10)
    assert s["epochs_run"] - s["best_epoch"] <= 3


def test_select_after_keeps_no_epoch_before_its_share_of_the_steps(tmp_path, monkeypatch):
    import roomtone.train.loop as loop
    from roomtone.train import fit
    from roomtone.train.checkpoint import load_checkpoint

    # a scripted validation with an early spike: without select_after epoch 1 is kept and patience 3 stops at 4
    scores = iter([1.0, 0.2, 0.3, 0.9, 0.4, 0.5])
    monkeypatch.setattr(loop, "_validate", lambda *a, **k: {"valid_loss": 1.0, "valid_accuracy": next(scores),
                                                            "valid_macro_f1": 0.0})
    data = make_tones(tmp_path / "data", per_class=(16, 4, 6))  # 48 train clips, batch 6: 8 steps per epoch
    cfg = tiny_config(epochs=6, mixup=0.0, checkpoint_every=0, patience=3, select_after=0.5)  # from epoch 3 on
    s = fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    assert (s["best_epoch"], s["epochs_run"], s["stopped_early"]) == (4, 6, False)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 4
    with pytest.raises(ParameterError, match="select_after"):
        tiny_config(select_after=1.5)


def test_valid_carved_by_group_when_absent(tmp_path):
    from roomtone.prepare.manifest import read_manifest, write_manifest
    from roomtone.train.data import load_splits

    data = make_tones(tmp_path / "data", per_class=(10, 0, 2))
    splits, _ = load_splits(data, valid_fraction=0.2, seed=0)  # 3 groups: carved by file
    assert splits["valid"] and splits["train"] and len(splits["valid"]) == 6
    rows = read_manifest(data)
    write_manifest(data, [r.__class__(path=r.path, label=r.label, group=f"g{i % 10}", split=r.split)
                          for i, r in enumerate(rows)])
    splits, _ = load_splits(data, valid_fraction=0.2, seed=0)  # 10 groups: carved by group
    assert splits["valid"] and splits["train"]
    assert not {r.group for r in splits["valid"]} & {r.group for r in splits["train"]}


def test_spectrogram_stretch_anchors_and_scales():
    from roomtone.train.augment import stretch

    ramp = torch.arange(8.0).view(1, 1, 8, 1).repeat(3, 1, 1, 4)
    out = stretch(ramp, freq_factor=torch.tensor([1.0, 0.5, 1.5]), time_factor=torch.ones(3))
    torch.testing.assert_close(out[0], ramp[0])  # factor 1 = identity
    torch.testing.assert_close(out[1, 0, :, 0], torch.arange(8.0) * 0.5)  # lowest band fixed, content moves up
    torch.testing.assert_close(out[2, 0, :5, 0], torch.arange(5.0) * 1.5)
    assert out[2, 0, -1, 0] == 7.0  # edge repeated
    t = torch.arange(9.0).view(1, 1, 1, 9).repeat(1, 1, 2, 1)
    torch.testing.assert_close(stretch(t, freq_factor=torch.ones(1), time_factor=torch.tensor([0.5]))[0, 0, 1],
                               4.0 + (torch.arange(9.0) - 4.0) * 0.5)  # about the centre


def test_ema_saves_the_average_and_validates_it(tmp_path):
    from roomtone.train import evaluate, fit, read_metrics

    data = make_tones(tmp_path / "data")
    fit(tiny_config(ema=0.8, epochs=2, patience=None), data_dir=data, out_dir=tmp_path / "run", progress=False)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert set(ck) >= {"model", "net", "ema"}
    assert any(not torch.equal(ck["model"][k], ck["net"][k]) for k in ck["net"] if ck["net"][k].is_floating_point())
    # the average is what is validated and saved: evaluating last.pt reproduces the logged validation accuracy
    last = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    assert evaluate(tmp_path / "run", split="valid", checkpoint="last")["accuracy"] == pytest.approx(last["valid_accuracy"])
    with pytest.raises(ParameterError, match="ema=1.5"):
        TrainConfig(ema=1.5)
    from roomtone.train.strategy import check_config

    with pytest.raises(ParameterError, match="ema=0.9 averages"):
        check_config(TrainConfig(ema=0.9, pretrained="aisfx"))


def test_dataloader_workers_train_the_same_bytes(tmp_path):
    """Each item's augmentation is drawn from (seed, index, epoch), whichever worker loads it, and the step's
    randomness from (seed, step): a run with 2 DataLoader workers (the GPU path's) equals the in-process one."""
    from roomtone.train import fit

    data = make_tones(tmp_path / "data")
    cfg = tiny_config(epochs=2, augment={"condition": "noise+mic", "p": 1.0, "snr_db": [5, 10]})
    fit(cfg, data_dir=data, out_dir=tmp_path / "w0", progress=False)
    fit(cfg.replace(num_workers=2), data_dir=data, out_dir=tmp_path / "w2", progress=False)
    a = torch.load(tmp_path / "w0" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "w2" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
