"""`roomtone simulate`: outputs, manifest of drawn parameters, replay, resume, refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf
import torch

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.manifest import read_manifest
from roomtone.prepare.render import build_chain, parse_range, render


@pytest.fixture()
def small_input(tmp_path, fsdd_dir):
    src = tmp_path / "in"
    for label in ("0", "1"):
        (src / label).mkdir(parents=True)
        for f in sorted(fsdd_dir.glob(f"{label}_theo_*.wav"))[:2]:
            shutil.copy(f, src / label / f.name)
    (src / "1" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return src


def _bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*__sim*.wav"))}


def test_render_manifest_replay_and_skips(small_input, tmp_path, noise_dir, rir_dir):
    out = tmp_path / "out"
    kw = dict(noise=noise_dir, snr_db="0:20", rooms=rir_dir, mic="phone", copies=2, seed=3, subtype="FLOAT",
              progress=False)
    manifest = render(small_input, out, **kw)
    rows = read_manifest(manifest)
    assert len(rows) == 8  # 4 good files x 2 copies; the broken one is reported
    assert "broken.wav" in (out / "skipped.csv").read_text()
    assert {r.label for r in rows} == {"0", "1"}
    for r in rows:
        p = json.loads(r.extra["params"])
        names = [s["name"] for s in p["transforms"]]
        assert names == ["Reverberate", "AddNoise", "SimulateMicrophone"]
        assert 0 <= float(r.extra["snr_db"]) <= 20 and r.extra["mic"] == "phone" and r.extra["room"]
        assert r.group.endswith(".wav")  # copies keep their source as group
    # the recorded parameters reproduce a written file exactly
    r = rows[0]
    audio, sr = sf.read(r.extra["source"], dtype="float32")
    chain = build_chain(sr=sr, noise=noise_dir, snr_db=(0, 20), rooms=rir_dir, mic="phone")
    again = chain.replay(torch.from_numpy(audio), json.loads(r.extra["params"]))
    written, _ = sf.read(r.path, dtype="float32")
    assert torch.allclose(again, torch.from_numpy(written), atol=1e-6)


def test_resume_same_bytes_and_seeds(small_input, tmp_path):
    kw = dict(noise="colored", snr_db=(5, 15), mic="laptop", copies=2, seed=0, progress=False)
    full = tmp_path / "full"
    render(small_input, full, **kw)
    ref = _bytes(full)
    # simulate an interruption: half the log, no manifest, some outputs missing
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / "manifest.csv").unlink()
    lines = (part / "simulate.log.jsonl").read_text().splitlines()
    (part / "simulate.log.jsonl").write_text("\n".join(lines[:3]) + "\n{\"key\": \"cut-off")
    for rec in lines[3:]:
        (part / json.loads(rec)["path"]).unlink()
    render(small_input, part, **kw)
    assert _bytes(part) == ref and len(read_manifest(part)) == len(ref)
    other = tmp_path / "other"
    render(small_input, other, **{**kw, "seed": 1})
    assert all(_bytes(other)[k] != v for k, v in ref.items())


def test_refusals(small_input, tmp_path):
    kw = dict(mic="phone", progress=False)
    with pytest.raises(DataError, match="input folder"):
        render(small_input, small_input / "sim", **kw)
    out = tmp_path / "o"
    render(small_input, out, **kw)
    with pytest.raises(DataError, match="finished run"):
        render(small_input, out, **kw)
    with pytest.raises(DataError, match="other settings"):
        render(small_input, out, **{**kw, "mic": "laptop"})
    render(small_input, out, overwrite=True, **{**kw, "mic": "laptop", "copies": 1})
    assert len(read_manifest(out)) == 4 and not list(out.rglob("*__sim1.wav"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a simulate output"):
        render(small_input, foreign, **kw)
    with pytest.raises(ParameterError, match="nothing to simulate"):
        render(small_input, tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()
    with pytest.raises(DataError, match="does not exist"):
        render(tmp_path / "missing", tmp_path / "x", **kw)
    with pytest.raises(ParameterError, match="reversed"):
        parse_range("20:0")
    assert parse_range("3") == (3.0, 3.0)


def test_cli(small_input, tmp_path):
    from typer.testing import CliRunner

    from roomtone.cli.main import build_app

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(build_app(), ["simulate", str(small_input), str(out), "--noise", "colored", "--snr", "5:10",
                                      "--mic", "headset,telephone", "--copies", "2", "--seed", "0"])
    assert res.exit_code == 0, res.output
    rows = read_manifest(out)
    assert len(rows) == 8 and {r.extra["mic"] for r in rows} <= {"headset", "telephone"}
    res = runner.invoke(build_app(), ["simulate", str(small_input), str(tmp_path / "bad"), "--snr", "9:1",
                                      "--mic", "phone"])
    assert isinstance(res.exception, ParameterError)


def test_csv_input_with_equal_file_names(tmp_path, fsdd_dir):
    src = tmp_path / "data"
    files = sorted(fsdd_dir.glob("2_yweweler_*.wav"))[:2]
    for label, f in zip(("a", "b"), files, strict=True):
        (src / label).mkdir(parents=True)
        shutil.copy(f, src / label / "same.wav")
    csv = src / "list.csv"
    csv.write_text("path,label\n" + "".join(f"{src / lab / 'same.wav'},{lab}\n" for lab in ("a", "b")))
    out = tmp_path / "out"
    render(csv, out, mic="phone", progress=False)
    rows = read_manifest(out)
    assert len(rows) == 2 and len({r.path for r in rows}) == 2


def test_auto_split_uses_test_banks_for_test_rows(tmp_path, fsdd_dir, noise_dir):
    from roomtone.prepare.banks import list_bank_files
    from roomtone.prepare.manifest import ManifestRow, write_manifest

    files = sorted(fsdd_dir.glob("4_lucas_*.wav"))[:4]
    src = tmp_path / "prepared"
    write_manifest(src, [ManifestRow(str(f), "4", "lucas", "test" if i % 2 else "train") for i, f in enumerate(files)])
    render(src, tmp_path / "out", noise=noise_dir, copies=1, progress=False)
    test_noises = {f.name for f in list_bank_files(noise_dir, split="test")}
    for r in read_manifest(tmp_path / "out"):
        assert (r.extra["noise"] in test_noises) == (r.split == "test")
    with pytest.raises(ParameterError, match="split='valid'"):
        render(src, tmp_path / "out2", noise=noise_dir, split="valid", progress=False)
    assert not (tmp_path / "out2").exists()


def test_cli_rt60_range_selects_rooms(small_input, tmp_path, rir_dir):
    from typer.testing import CliRunner

    from roomtone.cli.main import build_app

    out = tmp_path / "rt60"
    res = CliRunner().invoke(build_app(), ["simulate", str(small_input), str(out), "--rooms", str(rir_dir),
                                           "--rt60", "0:0.6", "--seed", "1"])
    assert res.exit_code == 0, res.output
    rows = read_manifest(out)
    assert len(rows) == 4 and all(0 < float(r.extra["rt60_s"]) <= 0.6 for r in rows)
    assert json.loads((out / "simulate.json").read_text())["rt60"] == [0.0, 0.6]
    with pytest.raises(ParameterError, match="give rooms too"):
        render(small_input, tmp_path / "x", mic="phone", rt60="0:1", progress=False)
    with pytest.raises(ParameterError, match="--rt60 '2:1' is reversed"):
        render(small_input, tmp_path / "y", rooms=rir_dir, rt60="2:1", progress=False)
