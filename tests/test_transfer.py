"""Transfer through the one fit loop: probe and finetune runs that load_run/evaluate understand, bandwidth
warning, folding, resume, and the settings each mode refuses."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from roomtone.config import PROBE_OVERRIDES, TrainConfig
from roomtone.errors import ParameterError
from roomtone.models import create_model
from roomtone.prepare.manifest import ManifestRow, write_manifest
from roomtone.train import fit
from roomtone.train.strategy import check_config, fold_standardization


@pytest.fixture()
def tiny_fsdd(tmp_path, fsdd_dir):
    """3 digits x 2 speakers for train, 1 other speaker for valid and test: 8 kHz audio."""
    rows = []
    for digit in ("0", "1", "2"):
        for spk, split in (("jackson", "train"), ("nicolas", "train"), ("theo", "valid"), ("george", "test")):
            for take in (0, 1):
                rows.append(ManifestRow(str(fsdd_dir / f"{digit}_{spk}_{take}.wav"), digit, spk, split))
    d = tmp_path / "prepared"
    d.mkdir()
    write_manifest(d, rows)
    (d / "prepare.json").write_text(json.dumps({"labels": ["0", "1", "2"], "sr": 8000, "clip_seconds": 0.6}))
    return d


@pytest.fixture()
def aisfx_cache(tmp_path, monkeypatch):
    """A cache holding an aiSFX backbone (random weights: no download in this test)."""
    from safetensors.torch import save_file

    from roomtone.models.pretrained import weights_path

    torch.manual_seed(0)
    cache = tmp_path / "cache"
    dest = weights_path("aisfx", cache_dir=cache)
    dest.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in create_model("aisfx", num_classes=1).backbone.state_dict().items()}, str(dest))
    monkeypatch.setenv("ROOMTONE_CACHE", str(cache))
    return dest


def test_fold_standardization_is_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=g) * 3 + 1
    mean, std = x.mean(0), x.std(0)
    for head in (torch.nn.Linear(6, 3), torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))):
        want = head((x - mean) / std)
        fold_standardization(head, mean, std)
        torch.testing.assert_close(head(x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.data
def test_probe_run_is_an_ordinary_run(tiny_fsdd, aisfx_cache, tmp_path):
    from roomtone.train import evaluate, load_run

    cfg = TrainConfig(pretrained="aisfx", mode="probe", epochs=4, batch_size=4, lr=1e-2, clip_seconds=None,
                      patience=None).replace(**PROBE_OVERRIDES)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="4000 Hz of bandwidth"):
        summary = fit(cfg, data_dir=tiny_fsdd, out_dir=out, progress=False)
    assert summary["epochs_run"] == 4 and summary["best_epoch"] >= 1
    info = json.loads((out / "run.json").read_text())
    assert info["model_config"] == {"name": "aisfx", "num_classes": 3}
    assert "4000 Hz" in info["transfer"]["bandwidth_warning"]
    cached = sorted(p.name.split("-")[0] for p in (out / "embeddings").iterdir())
    assert cached == ["train", "valid"]
    model, labels, config = load_run(out)
    assert labels == ["0", "1", "2"] and config.pretrained == "aisfx" and model.sr == 44100
    # the backbone is untouched: equal to the cached pre-trained weights
    from safetensors.torch import load_file

    ref = load_file(str(aisfx_cache))
    assert torch.equal(model.backbone.conv_block3.conv2.weight, ref["conv_block3.conv2.weight"])
    # the folded head reproduces the logged validation accuracy
    res = evaluate(out, split="valid")
    hist = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = next(r for r in hist if r["epoch"] == summary["best_epoch"])
    assert res["accuracy"] == pytest.approx(best["valid_accuracy"], abs=1e-6)
    # a second run in the same folder needs --resume; resume finishes without recomputing
    with pytest.raises(ParameterError, match="resume"):
        fit(cfg, data_dir=tiny_fsdd, out_dir=out, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fit(cfg, data_dir=tiny_fsdd, out_dir=out, resume=True, progress=False)
    assert again["epochs_run"] == 4


@pytest.mark.data
def test_finetune_with_gradual_unfreezing(tiny_fsdd, aisfx_cache, tmp_path):
    from safetensors.torch import load_file

    from roomtone.train import load_run

    cfg = TrainConfig(pretrained="aisfx", mode="finetune", epochs=2, batch_size=6, lr=1e-3, clip_seconds=0.5,
                      unfreeze_schedule=[1], patience=None, specaugment={"freq_masks": 1, "freq_width": 4,
                                                                         "time_masks": 0, "time_width": 1})
    out = tmp_path / "ft"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = fit(cfg, data_dir=tiny_fsdd, out_dir=out, progress=False)
    assert summary["epochs_run"] == 2
    model, _, _ = load_run(out, checkpoint="last")
    ref = load_file(str(aisfx_cache))
    # top stage unfroze at epoch 1 and moved; the stages without a schedule entry stayed frozen
    assert not torch.equal(model.backbone.conv_block4.conv1.weight, ref["conv_block4.conv1.weight"])
    assert torch.equal(model.backbone.conv_block1.conv1.weight, ref["conv_block1.conv1.weight"])
    assert torch.equal(model.backbone.conv_block1.bn1.running_mean, ref["conv_block1.bn1.running_mean"])
    # the head trained on standardized embeddings; what is saved has the standardization folded in, so the
    # reloaded model scores the validation split exactly as the loop's model did
    from roomtone.train import evaluate, read_metrics

    last = read_metrics(out / "metrics.jsonl")[-1]
    again = evaluate(out, split="valid", checkpoint="last")
    assert again["accuracy"] == pytest.approx(last["valid_accuracy"], abs=1e-9)


def test_settings_a_mode_cannot_use_are_refused():
    probe = TrainConfig(pretrained="aisfx", mode="probe").replace(**PROBE_OVERRIDES)
    check_config(probe)
    with pytest.raises(ParameterError, match="mode='probe' trains on cached embeddings"):
        check_config(TrainConfig(pretrained="aisfx", mode="probe"))  # default SpecAugment + phone-mic augmentation
    with pytest.raises(ParameterError, match="unfreeze_schedule"):
        check_config(probe.replace(unfreeze_schedule=[0]))
    with pytest.raises(ParameterError, match="from scratch"):
        check_config(TrainConfig(unfreeze_schedule=[1]))
    with pytest.raises(ParameterError, match="own front end"):
        check_config(probe.replace(**{"frontend.n_mels": 40}))
    with pytest.raises(ParameterError, match="model='vgg_tiny'"):
        check_config(probe.replace(model="vgg_tiny"))
    with pytest.raises(ParameterError, match=r"unfreeze_schedule=\[2, 1\]"):
        check_config(TrainConfig(pretrained="aisfx", mode="finetune", unfreeze_schedule=[2, 1]))
    with pytest.raises(ParameterError, match="DDP"):
        check_config(TrainConfig(pretrained="aisfx", mode="finetune", unfreeze_schedule=[1]), world_size=2)
    with pytest.raises(ParameterError, match="pretrained='nope'"):
        check_config(TrainConfig(pretrained="nope"))
