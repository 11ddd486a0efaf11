"""`roomtone features describe`: the representation size table from the real layers."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from roomtone.cli.main import build_app
from roomtone.errors import ParameterError
from roomtone.features.describe import describe_sizes


def test_sizes_match_the_frame_arithmetic():
    rows = {(r.name, r.dtype): r for r in describe_sizes(sr=44100, seconds=1.0)}
    frames = 1 + 44100 // 512  # centred frames
    assert rows[("waveform", "int16")].bytes_per_second == 44100 * 2
    assert rows[("STFT |X|", "float32")].shape == (1024 // 2 + 1, frames) == (513, 87)
    assert rows[("mel", "float32")].shape == (128, 87)
    assert rows[("CQT |X|", "float32")].shape == (72, 87)
    assert rows[("MFCC", "float32")].shape == (20, 87)
    assert rows[("mel", "float32")].bytes == 128 * 87 * 4
    half = {r.name: r for r in describe_sizes(sr=16000, seconds=2.0, n_fft=400, hop_length=160, n_mels=40)
            if r.dtype == "float32"}
    assert half["mel"].shape == (40, 1 + 32000 // 160)
    assert half["mel"].bytes_per_second == half["mel"].bytes / 2.0
    with pytest.raises(ParameterError, match="seconds=0"):
        describe_sizes(seconds=0)


def test_cli_table_and_json():
    runner = CliRunner()
    app = build_app()
    res = runner.invoke(app, ["features", "describe", "--sr", "44100", "--seconds", "1"])
    assert res.exit_code == 0, res.output
    assert "513 x 87" in res.output and "72 x 87" in res.output and "88,200" in res.output
    res = runner.invoke(app, ["features", "describe", "--sr", "22050", "--n-mels", "64", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["shape"] for r in rows if r["name"] == "mel"] == [[64, 1 + 22050 // 512]]
    # an impossible CQT (above Nyquist) is reported in the table, not a crash
    res = runner.invoke(app, ["features", "describe", "--sr", "8000", "--n-bins", "84", "--json"])
    assert res.exit_code == 0 and "Nyquist" in res.output
