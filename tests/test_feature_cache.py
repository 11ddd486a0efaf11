"""Feature cache: resume after a kill gives byte-identical arrays; half-written entries are recomputed;
a changed parameter or changed audio never reads stale features; FeatureDataset reads the cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from roomtone.errors import DataError, ParameterError
from roomtone.features.cache import (
    cache_features,
    cache_prepared,
    compute_features,
    entry_array,
    feature_config,
    npy_is_complete,
    read_cache_index,
)
from roomtone.prepare.dataset import FeatureDataset, collate_padded
from roomtone.prepare.manifest import ManifestRow, write_manifest

SR = 8000


def _corpus(root: Path, n: int) -> list[ManifestRow]:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        p = root / "audio" / f"{k:04d}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        length = int(SR * (0.2 + 0.3 * rng.random()))
        t = np.arange(length) / SR
        y = 0.3 * np.sin(2 * np.pi * (200 + 40 * k) * t) + 0.01 * rng.standard_normal(length)
        sf.write(str(p), y.astype(np.float32), SR, subtype="PCM_16")
        rows.append(ManifestRow(path=str(p), label=f"c{k % 3}", split="train"))
    return rows


def _arrays(cache_dir: Path) -> dict[str, bytes]:
    """Every row's feature array (bytes) by row key, read through the index and the memory-mapped shards."""
    idx = read_cache_index(cache_dir)
    return {k: entry_array(cache_dir, e).tobytes() + str(entry_array(cache_dir, e).shape).encode()
            for k, e in idx["entries"].items()}


def _files(cache_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((cache_dir / "shards").iterdir())}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp("cache_corpus"), 40)


def test_resume_after_interruption_is_byte_identical(rows, tmp_path):
    full = cache_features(rows, tmp_path / "a", sr=SR, n_mels=32, shard_size=8)
    assert (full["computed"], full["reused"]) == (40, 0)
    ref, ref_files = _arrays(Path(full["cache_dir"])), _files(Path(full["cache_dir"]))
    assert len(ref) == 40 and len(ref_files) == 10  # 5 shards: array + table each
    part = cache_features(rows, tmp_path / "b", sr=SR, n_mels=32, shard_size=8, stop_after=3)  # killed
    cdir = Path(part["cache_dir"])
    with pytest.raises(DataError, match="did not finish"):
        read_cache_index(cdir)
    arrays = sorted((cdir / "shards").glob("*.npy"))
    assert len(arrays) == 3
    # a half-written shard under its final name, a shard array whose table was never written,
    # and a temporary file of a dead writer
    data = arrays[1].read_bytes()
    arrays[1].write_bytes(data[: len(data) // 2])
    assert not npy_is_complete(arrays[1])[0]
    (cdir / "shards" / arrays[2].name.replace(".npy", ".json")).unlink()
    (cdir / "shards" / ".junk.4194309.tmp.npy").write_bytes(b"partial")  # no such pid: its writer died
    again = cache_features(rows, tmp_path / "b", sr=SR, n_mels=32, shard_size=8)
    assert (again["reused"], again["recomputed_invalid"], again["computed"]) == (8, 8, 32)
    assert _arrays(cdir) == ref
    assert _files(cdir) == ref_files  # same shards, byte for byte, no leftovers
    third = cache_features(rows, tmp_path / "b", sr=SR, n_mels=32, shard_size=8, workers=2)
    assert (third["computed"], third["reused"]) == (0, 40)


@pytest.mark.slow
def test_real_kill_midway_then_resume(tmp_path):
    rows = _corpus(tmp_path, 120)
    write_manifest(tmp_path / "prep", rows)
    (tmp_path / "prep" / "prepare.json").write_text('{"labels": ["c0", "c1", "c2"], "sr": 8000, "clip_seconds": null}')
    # the child pauses 50 ms per finished shard so that the kill lands midway even on a busy machine
    code = ("import sys, time; from roomtone.features.cache import cache_prepared; "
            "cache_prepared(sys.argv[1], cache_root=sys.argv[2], workers=1, shard_size=8, "
            "progress=lambda n: time.sleep(0.05))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "prep"), str(tmp_path / "killed")], env=env)

    def tables_done() -> int:  # renamed into place; a temporary (".<name>.<pid>.tmp.json") is not done
        return sum(not p.name.startswith(".") for p in (tmp_path / "killed").glob("*/shards/*.json"))

    deadline = time.time() + 60
    while time.time() < deadline and tables_done() < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = tables_done()
    assert 2 <= n_before < 120 // 8, f"the job was not killed midway ({n_before} shards done)"
    again = cache_prepared(tmp_path / "prep", cache_root=tmp_path / "killed", shard_size=8)
    assert again["reused"] >= 8 * 2 and again["computed"] > 0, again
    clean = cache_prepared(tmp_path / "prep", cache_root=tmp_path / "clean", workers=2, shard_size=8)
    assert _arrays(Path(again["cache_dir"])) == _arrays(Path(clean["cache_dir"]))
    assert _files(Path(again["cache_dir"])) == _files(Path(clean["cache_dir"]))


def test_changed_parameter_or_audio_never_reads_stale(rows, tmp_path):
    a = cache_features(rows[:6], tmp_path, sr=SR, n_mels=32)
    b = cache_features(rows[:6], tmp_path, sr=SR, n_mels=40)
    assert a["cache_dir"] != b["cache_dir"] and (b["computed"], b["reused"]) == (6, 0)
    ia, ib = read_cache_index(a["cache_dir"]), read_cache_index(b["cache_dir"])
    assert {tuple(e[2])[0] for e in ia["entries"].values()} == {32}
    assert {tuple(e[2])[0] for e in ib["entries"].values()} == {40}
    assert not {e[0] for e in ia["entries"].values()} & {e[0] for e in ib["entries"].values()}
    c = cache_features(rows[:6], tmp_path, sr=SR, n_mels=32, hop_length=128)
    assert (c["computed"], c["reused"]) == (6, 0)
    d = cache_features(rows[:6], tmp_path, sr=SR, n_mels=32, clip_seconds=0.25)
    assert (d["computed"], d["reused"]) == (6, 0)
    # the audio of one file changes: only that entry is recomputed, and the new values are read
    p = Path(rows[2].path)
    old = np.array(entry_array(a["cache_dir"], ia["entries"][f"{p}||"]))
    sf.write(str(p), 0.5 * np.ones(SR // 4, np.float32), SR, subtype="PCM_16")
    e = cache_features(rows[:6], tmp_path, sr=SR, n_mels=32)
    assert (e["computed"], e["reused"]) == (1, 5)
    ds = FeatureDataset(rows[:6], labels=["c0", "c1", "c2"], cache_dir=e["cache_dir"])
    new = ds[2][0].numpy()
    assert new.shape != old.shape or not np.array_equal(new, old)
    cfg = feature_config("log-mel", sr=SR, n_mels=32)
    from roomtone.features.cache import build_layer

    np.testing.assert_array_equal(new, compute_features(str(p), None, None, config=cfg, layer=build_layer(cfg)))


def test_feature_dataset_matches_librosa_and_collates(rows, tmp_path):
    librosa = pytest.importorskip("librosa")
    rep = cache_features(rows[:5], tmp_path, sr=SR, n_mels=32, n_fft=512, hop_length=128, workers=2)
    ds = FeatureDataset(rows[:5], labels=["c0", "c1", "c2"], cache_dir=rep["cache_dir"])
    x, y = ds[1]
    audio, _ = sf.read(rows[1].path, dtype="float32")
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=512, hop_length=128, n_mels=32),
                              top_db=80.0)
    assert x.dtype == torch.float32 and x.shape == ref.shape and y == 1
    np.testing.assert_allclose(x.numpy(), ref, atol=2e-3)
    # same samples as the raw-audio dataset (the cache's fast loader == roomtone.audio.load)
    from roomtone.features.cache import build_layer
    from roomtone.prepare.dataset import AudioDataset

    wave, _ = AudioDataset(rows[:5], labels=["c0", "c1", "c2"], sr=SR)[1]
    with torch.inference_mode():
        direct = build_layer(feature_config("log-mel", sr=SR, n_mels=32, n_fft=512, hop_length=128))(wave)
    np.testing.assert_array_equal(x.numpy(), direct.numpy())
    batch, labels, lengths = collate_padded([ds[i] for i in range(5)])
    assert batch.shape[:2] == (5, 32) and lengths.max() == batch.shape[-1]
    with pytest.raises(DataError, match="not in the feature cache"):
        FeatureDataset(rows[:6], labels=["c0", "c1", "c2"], cache_dir=rep["cache_dir"])


def test_damaged_shard_of_the_right_size_is_caught(rows, tmp_path):
    """Bytes flipped inside a shard (its size and header intact): FeatureDataset refuses the entry with a
    clear DataError, and a rerun of the cache recomputes that shard to the original bytes."""
    rep = cache_features(rows[:16], tmp_path, sr=SR, n_mels=32, shard_size=8)
    cdir = Path(rep["cache_dir"])
    ref = _arrays(cdir)
    idx = read_cache_index(cdir)
    shard, off, shape, crc = next(iter(idx["entries"].values()))
    mm = np.load(cdir / shard, mmap_mode="r+")
    mm[off + 3] += 1.0  # one value of one entry
    mm.flush()
    del mm
    assert npy_is_complete(cdir / shard)[0]  # nothing a size check would see
    ds = FeatureDataset(rows[:16], labels=["c0", "c1", "c2"], cache_dir=cdir)
    damaged = [i for i, e in enumerate(ds.entries) if list(e) == [shard, off, shape, crc]]
    assert len(damaged) == 1
    ds[(damaged[0] + 1) % 16]  # an intact entry reads fine
    with pytest.raises(DataError, match="damaged"):
        ds[damaged[0]]
    again = cache_features(rows[:16], tmp_path, sr=SR, n_mels=32, shard_size=8)
    assert (again["recomputed_invalid"], again["computed"], again["reused"]) == (8, 8, 8)
    assert _arrays(cdir) == ref


def test_bad_file_is_reported_not_fatal(rows, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    more = [*rows[:3], ManifestRow(path=str(bad), label="c0"), ManifestRow(path=str(tmp_path / "gone.wav"), label="c0")]
    rep = cache_features(more, tmp_path / "c", sr=SR, n_mels=32)
    assert rep["computed"] == 3 and sorted(Path(f["path"]).name for f in rep["failed"]) == ["bad.wav", "gone.wav"]
    assert len(read_cache_index(rep["cache_dir"])["entries"]) == 3
    with pytest.raises(ParameterError, match="no parameter"):
        feature_config("log-mel", sr=SR, n_mfcc=3)


def test_cli_cache(rows, tmp_path):
    import typer
    from typer.testing import CliRunner

    import roomtone.cli.features_cache as fc
    from roomtone.features import frontend_defaults

    write_manifest(tmp_path / "prep", rows[:4])
    (tmp_path / "prep" / "prepare.json").write_text('{"labels": ["c0", "c1", "c2"], "sr": 8000, "clip_seconds": 0.3}')
    app = typer.Typer()
    sub = typer.Typer()
    fc.register_cache(sub)
    app.add_typer(sub, name="features")
    r = CliRunner().invoke(app, ["features", "cache", str(tmp_path / "prep"), "--n-mels", "24", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "4 computed" in r.output
    idx = read_cache_index(next((tmp_path / "prep" / "features").iterdir()))
    frames = 1 + int(0.3 * 8000) // frontend_defaults(sr=8000)["hop_length"]   # centred frames, default hop
    assert idx["config"]["clip_seconds"] == 0.3 and {tuple(e[2]) for e in idx["entries"].values()} == {(24, frames)}
    rep = cache_prepared(tmp_path / "prep", n_mels=24)
    assert rep["reused"] == 4
    ds = FeatureDataset.from_dir(tmp_path / "prep")
    assert len(ds) == 4 and ds[0][0].shape == (24, frames)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_padded)
    assert torch.equal(torch.cat([b[0] for b in loader]), torch.stack([ds[i][0] for i in range(4)]))
