"""`roomtone expect` end to end on a small synthetic prepared dir (clicks vs hums)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_recipe_events import make_clips

from roomtone.cli.main import main
from roomtone.prepare.manifest import ManifestRow, write_manifest


def write_prepared(folder: Path, *, n_per_class: int = 8, seed: int = 0) -> Path:
    """WAV files + manifest.csv + prepare.json; 4 sessions as groups, the last one is the test split."""
    waves, y, labels = make_clips(n_per_class=n_per_class, seed=seed)
    rows = []
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    for i, (w, k) in enumerate(zip(waves, y, strict=True)):
        path = folder / "audio" / f"{labels[k]}_{i:03d}.wav"
        sf.write(path, w, 8000, subtype="PCM_16")
        group = f"s{(i // 2) % 4}"
        rows.append(ManifestRow(str(path.relative_to(folder)), labels[k], group, "test" if group == "s3" else "train"))
    write_manifest(folder, rows)
    (folder / "prepare.json").write_text(json.dumps({"labels": labels, "sr": 8000, "clip_seconds": None}))
    return folder


def cli(*args: str) -> None:
    """Run ``roomtone ARGS``; a clean exit (code 0) returns, any other exit raises."""
    try:
        main(list(args))
    except SystemExit as e:
        if e.code not in (0, None):
            raise


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prep"))


def test_expect_default_command_and_run(prepared: Path, tmp_path: Path, capsys):
    cli("expect", str(prepared), "--out", str(tmp_path / "a"), "--simulate", "noise", "--fmax", "3500")
    out = capsys.readouterr().out
    assert "baseline accuracy 100.0%" in out and "pooling max" in out
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["frontend"]["fmax"] == 3500.0 and res["frontend"]["sr"] == 8000
    assert res["baseline"]["holdout"]["n_test"] == 4
    assert [c["pooling"] for c in res["events"]["per_class"]] == ["max", "mean"]
    html = (tmp_path / "a" / "report.html").read_text()
    assert html.count("<audio") == 2 * 3  # one example per class: original, simulated, reconstructed
    assert "No robustness matrix" in html
    cli("expect", "run", str(prepared), "--out", str(tmp_path / "b"), "--simulate", "none", "--examples", "0")
    html = (tmp_path / "b" / "report.html").read_text()
    assert "<audio" not in html and "No listening examples" in html


def test_expect_robustness_command(prepared: Path, tmp_path: Path, capsys):
    cli("expect", "robustness", str(prepared), "--out", str(tmp_path), "--train", "clean,noise",
        "--test", "clean,noise_0db", "--copies", "1")
    res = json.loads((tmp_path / "robustness.json").read_text())
    assert res["train_conditions"] == ["clean", "noise"] and np.array(res["accuracy"]).shape == (2, 2)
    assert "robustness heatmap" in (tmp_path / "report.html").read_text()
    assert "train        clean" in capsys.readouterr().out


def test_expect_errors(tmp_path: Path):
    with pytest.raises(SystemExit) as e:
        main(["expect", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["expect", "robustness", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--backend", "x"])
    assert e.value.code == 2
