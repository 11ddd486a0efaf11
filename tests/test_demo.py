"""``roomtone demo``: the quick smoke run through the CLI, step bookkeeping, bad input."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from roomtone.cli.main import build_app
from roomtone.demo import DemoResult, _Missing, _require, _Runner, run_demo
from roomtone.errors import ParameterError


@pytest.mark.slow
def test_quick_demo_through_the_cli(tmp_path):
    """The CI smoke run: every step ok, report + ONNX written, accuracies printed."""
    out = tmp_path / "demo"
    res = CliRunner().invoke(build_app(), ["demo", "--out", str(out), "--quick"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "demo.json").read_text())
    assert summary["missing"] == [], summary["steps"]
    assert [s["status"] for s in summary["steps"]] == ["ok"] * 7, summary["steps"]
    assert (out / "model.onnx").stat().st_size > 10_000
    report = out / "report" / "report.html"
    assert report.exists() and "<html" in report.read_text(errors="replace")[:2000].lower()
    line = re.search(r"accuracy: baseline (\S+), CNN clean (\S+), corrupted all (\S+)", res.output)
    assert line, res.output
    expected = (summary["baseline_accuracy"], summary["test_accuracy"], summary["corrupted_accuracy"]["all"])
    assert line.groups() == tuple(f"{v:.1%}" for v in expected)
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["train_seconds"] > 0
    assert len(summary["labels"]) == 9 and sum(summary["n_examples"].values()) == 9 * 24
    assert str(report) in res.output.replace("\n", "")
    # the demo report has its own listening examples (original / simulated / heard by the model), and they load
    html = report.read_text()
    n_audio = html.count("<audio ")
    assert n_audio >= 2 * 9 and "feasibility report:" not in html
    from test_report_browser import check_in_browser

    got, console = check_in_browser(report, tmp_path)
    assert console == [] and got["audio_ok"] == n_audio and got["images_ok"] == got["images"] > 0, got


def test_missing_piece_is_reported_not_skipped(tmp_path):
    result = DemoResult(out_dir=tmp_path, dataset="synthetic")
    run = _Runner(result, None, total=3)
    assert run("a", lambda: "fine")
    assert not run("b", lambda: _require("roomtone.no_such_stage", "thing"))
    assert not run("c", lambda: "never", needs=("b",))
    assert not run("d", lambda: _require("roomtone.demo", "no_such_function"))
    assert [(s.name, s.status) for s in result.steps] == [
        ("a", "ok"), ("b", "missing"), ("c", "skipped"), ("d", "missing")]
    assert "roomtone.no_such_stage" in result.steps[1].detail and "needs b" in result.steps[2].detail
    assert result.missing == ["b", "d"]
    with pytest.raises(_Missing):
        _require("roomtone.no_such_stage")


def test_missing_package_is_missing_with_its_hint_printed_literally(tmp_path):
    from rich.console import Console

    from roomtone.errors import MissingDependencyError

    def export():
        raise MissingDependencyError("ONNX export needs onnx: pip install 'roomtone[export]'")

    console = Console(record=True, width=200)
    result = DemoResult(out_dir=tmp_path, dataset="synthetic")
    run = _Runner(result, console, total=2)
    assert not run("export", export)
    assert run("report", lambda: "[not markup] fine")
    assert [(s.name, s.status) for s in result.steps] == [("export", "missing"), ("report", "ok")]
    assert result.to_dict()["missing"] == ["export"]
    text = console.export_text()
    assert "missing export" in text and "pip install 'roomtone[export]'" in text and "[not markup] fine" in text


def test_bad_arguments(tmp_path):
    with pytest.raises(ParameterError, match="dataset='esc50'"):
        run_demo(tmp_path / "x", dataset="esc50")
    with pytest.raises(ParameterError, match="does not exist"):
        run_demo(tmp_path / "x", data=tmp_path / "nowhere")
    with pytest.raises(ParameterError, match="epochs=0"):
        run_demo(tmp_path / "x", epochs=0)
    assert not (tmp_path / "x").exists()
