"""CLI: train -> evaluate -> predict -> export -> design on a tiny tone dataset (also augment + amp paths)."""

from __future__ import annotations

import json

import pytest
from test_train import make_tones, tiny_config
from typer.testing import CliRunner

from roomtone.cli.main import build_app


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = make_tones(root / "data", per_class=(6, 2, 2))
    cfg = root / "cfg.yaml"
    tiny_config(epochs=1).to_yaml(cfg)
    res = CliRunner().invoke(build_app(), ["train", str(data), "--out", str(root / "run"), "--config", str(cfg),
                                           "--set", "max_steps=2", "--no-progress"])
    assert res.exit_code == 0, res.output
    return root, data


def test_cli_evaluate_predict_export(cli_run):
    root, data = cli_run
    app, runner = build_app(), CliRunner()
    res = runner.invoke(app, ["evaluate", str(root / "run"), "--out", str(root / "m.json")])
    assert res.exit_code == 0, res.output
    assert set(json.loads((root / "m.json").read_text())) >= {"accuracy", "macro_f1", "per_class",
                                                              "confusion_matrix", "labels"}
    res = runner.invoke(app, ["predict", str(root / "run"), str(data), "--out", str(root / "p.json")])
    assert res.exit_code == 0, res.output
    assert len(json.loads((root / "p.json").read_text())) == 30
    res = runner.invoke(app, ["export", str(root / "run"), "--format", "torchscript"])
    assert res.exit_code == 0, res.output
    assert (root / "run" / "model.ts").exists() and "exported" in res.output


def test_cli_design_and_errors(cli_run):
    root, data = cli_run
    runner = CliRunner()
    res = runner.invoke(build_app(), ["design", "--target-duration", "0.5", "--sr", "8000", "--hop-length", "80"])
    assert res.exit_code == 0 and "recommended" in res.output
    res = runner.invoke(build_app(), ["design", "--target-duration", "5", "--run", str(root / "run")])
    assert res.exit_code == 0 and "smaller" in res.output
    from roomtone.errors import ParameterError

    res = runner.invoke(build_app(), ["train", str(data), "--out", str(root / "run"), "--no-progress"])
    assert isinstance(res.exception, ParameterError) and "already holds a run" in str(res.exception)


def test_fit_with_waveform_augment_and_cpu_amp(tmp_path):
    from roomtone.train import fit

    data = make_tones(tmp_path / "data", per_class=(6, 2, 2))
    cfg = tiny_config(epochs=1, max_steps=2, amp="on", augment={"condition": "noise", "p": 1.0, "snr_db": [5, 10]})
    s = fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    assert s["global_step"] == 2 and s["last"]["train_loss"] > 0
