"""Faults and mistakes, as a user meets them: kill -9, a full disk, a read-only folder, hostile input.

Each case checks what the user sees (one ``error:`` line, its exit code) and what is left on disk
(no partial file, no temporary, an earlier result intact).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_train import make_tones, tiny_config

from roomtone.errors import (
    CheckpointError,
    DataError,
    OutputExistsError,
    ParameterError,
    StorageError,
)
from roomtone.files import atomic_write_bytes, atomic_write_text, sweep_temps

ROOT = Path(__file__).resolve().parents[1]


def roomtone(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m roomtone ARGS`` in a fresh process (what a user runs)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("ROOMTONE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "roomtone", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def cli(capsys, monkeypatch):
    """``roomtone ARGS`` in this process (fast: torch is imported once); same result type as roomtone()."""
    from roomtone.cli.main import main

    monkeypatch.delenv("ROOMTONE_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        got = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, got.out, got.err)

    return run


def one_error_line(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or ".partial" in p.name)


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str = "256k", options: str = ""):
    """A small tmpfs at ``path`` (skips the test where it cannot be mounted: not root, no mount)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, *, leave: int = 0) -> None:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    with open(folder / "filler", "wb") as f:
        with contextlib.suppress(OSError):
            while shutil.disk_usage(folder).free > leave:
                f.write(b"\0" * min(4096, max(1, shutil.disk_usage(folder).free - leave)))
                f.flush()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """36 short clips in 9 class folders (generated; fast to prepare)."""
    from roomtone.prepare.datasets import synthetic_events

    root = tmp_path_factory.mktemp("faults") / "sounds"
    synthetic_events(root, n_per_class=4, n_sessions=2, seed=0)
    return root


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    from roomtone.train import fit

    root = tmp_path_factory.mktemp("faults_run")
    data = make_tones(root / "data", per_class=(6, 2, 4))
    fit(tiny_config(epochs=1, mixup=0.0, checkpoint_every=0), data_dir=data, out_dir=root / "run", progress=False)
    return root / "run", data


# ---- worker pools die with their parent ---------------------------------------------------------------------

POOL_PARENT = textwrap.dedent("""
    import os, sys, time
    from roomtone.workers import process_pool

    def work(i):
        time.sleep(120)

    def pid(_):
        return os.getpid()

    if __name__ == "__main__":
        ex = process_pool(2)
        pids = set()
        while len(pids) < 2:
            pids |= set(ex.map(pid, range(8)))
        [ex.submit(work, i) for i in range(2)]
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see processes")
def test_kill9_of_a_pool_parent_leaves_no_worker(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(POOL_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5.0
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), f"orphaned workers {workers} still alive 5 s after kill -9"
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.kill()


def test_audit_and_cache_pools_are_the_dying_kind():
    """The pools of audit and the feature cache (and simulate, through audit) are built by process_pool."""
    import inspect

    from roomtone.features import cache
    from roomtone.prepare import audit

    for mod in (audit, cache):
        src = inspect.getsource(mod)
        assert "process_pool(" in src and "ProcessPoolExecutor(" not in src, mod.__name__


# ---- full disk, read-only folder ---------------------------------------------------------------------------

def test_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        atomic_write_text(disk / "preds.csv", "an earlier good result\n")
        fill(disk, leave=8192)
        with pytest.raises(StorageError, match="no space left on device"):
            atomic_write_bytes(disk / "preds.csv", b"x" * 200_000)
        assert (disk / "preds.csv").read_text() == "an earlier good result\n"
        assert leftovers(disk) == []


def test_full_disk_through_the_cli_is_one_error_line(tmp_path, tiny_data):
    with tmpfs(tmp_path / "disk", size="512k") as disk:
        fill(disk, leave=16384)
        res = roomtone("prepare", tiny_data, disk / "prepared", "--clip-seconds", "0.5")
        line = one_error_line(res)
        assert res.returncode == 3 and "no space left on device" in line and str(disk) in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # nothing half-written, no temporary


def _read_only(folder: Path):
    """A folder this process cannot write: a read-only tmpfs as root (root ignores permissions), else chmod."""
    if os.geteuid() == 0:
        return tmpfs(folder, options="ro")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return contextlib.nullcontext(folder)


def test_read_only_output_folder_is_one_error_line(tmp_path, tiny_data):
    with _read_only(tmp_path / "ro") as ro:
        res = roomtone("prepare", tiny_data, ro / "prepared", "--clip-seconds", "0.5")
        line = one_error_line(res)
        assert res.returncode == 3 and ("read-only file system" in line or "permission denied" in line), line
        assert list(ro.iterdir()) == []


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    dead = tmp_path / ".last.pt.4194309.tmp"  # a pid above the kernel's maximum: its writer is gone
    dead.write_bytes(b"torn")
    (tmp_path / ".model.onnx.4194309.tmp").mkdir()
    mine = tmp_path / f".best.pt.{os.getpid()}.tmp"  # this process's own: another writer may be busy
    mine.write_bytes(b"busy")
    keep = tmp_path / "last.pt"
    keep.write_bytes(b"good")
    assert sorted(p.name for p in sweep_temps(tmp_path)) == [".last.pt.4194309.tmp", ".model.onnx.4194309.tmp"]
    assert keep.exists() and mine.exists()
    atomic_write_text(tmp_path / "run.json", "{}")  # every atomic write sweeps its folder first
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "last.pt", "run.json"]


# ---- nothing replaced without --overwrite -------------------------------------------------------------------

def test_train_into_a_finished_run_refuses(tone_run, tmp_path, cli):
    from roomtone.train import fit

    run, data = tone_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "last.pt").unlink()  # a run with results (best.pt, metrics.jsonl) but no last.pt
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    with pytest.raises(OutputExistsError, match=r"already holds a run \(best.pt, metrics.jsonl"):
        fit(tiny_config(epochs=1), data_dir=data, out_dir=copy, progress=False)
    with pytest.raises(OutputExistsError, match="no last.pt to resume from"):
        fit(tiny_config(epochs=1), data_dir=data, out_dir=copy, resume=True, progress=False)
    res = cli("train", data, "--out", copy, "--epochs", "1", "--no-progress")
    line = one_error_line(res)
    assert res.returncode == 2 and "--resume to continue it, --overwrite to replace it" in line
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_outputs_refuse_existing_files_without_overwrite(tone_run, tmp_path, cli):
    run, data = tone_run
    wav = next(data.glob("*_test_0.wav"))
    out = tmp_path / "preds.csv"
    out.write_text("keep me\n")
    res = cli("predict", run, wav, "--out", out)
    assert res.returncode == 2 and "exists; pass --overwrite" in one_error_line(res)
    assert out.read_text() == "keep me\n"
    res = cli("predict", run, wav, "--out", out, "--overwrite")
    assert res.returncode == 0, res.stderr
    assert out.read_text().startswith("file,ok,error,window")
    res = cli("evaluate", run, "--out", out)
    assert res.returncode == 2 and "exists; pass --overwrite" in one_error_line(res)
    res = cli("export", run, "--format", "torchscript", "--out", tmp_path)
    assert res.returncode == 2 and "is a folder; give a file name" in one_error_line(res)
    assert leftovers(tmp_path) == []


def test_prepare_overwrite_is_all_or_nothing(tmp_path, tiny_data):
    from roomtone.prepare.pipeline import prepare

    out = prepare(tiny_data, tmp_path / "prepared", clip_seconds=0.5)
    old = {n: (out / n).read_bytes() for n in ("manifest.csv", "prepare.json")}
    with pytest.raises(OutputExistsError, match="already prepared"):
        prepare(tiny_data, out, clip_seconds=0.25)
    with pytest.raises(ParameterError, match="label_pattern"):  # fails midway: the old folder is intact
        prepare(tiny_data, out, clip_seconds=0.25, label_pattern="(", overwrite=True)
    assert {n: (out / n).read_bytes() for n in old} == old
    prepare(tiny_data, out, clip_seconds=0.25, overwrite=True)
    assert json.loads((out / "prepare.json").read_text())["clip_seconds"] == 0.25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no staging folder left


# ---- batch jobs go on past a bad file ----------------------------------------------------------------------

def test_evaluate_scores_the_readable_files_and_lists_the_bad_one(tone_run, tmp_path, cli):
    from roomtone.train import evaluate

    run, data = tone_run
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    rows = (copy / "manifest.csv").read_text().splitlines()
    (copy / "manifest.csv").write_text("\n".join(rows[:1] + [r.replace(str(data), str(copy)) for r in rows[1:]]) + "\n")
    bad = sorted(copy.glob("*_test_*.wav"))[0]
    bad.write_bytes(b"RIFF\x00\x00not a wav")
    m = evaluate(run, data_dir=copy, split="test")
    assert m["n"] == 3 * 4 - 1 and [b["path"] for b in m["bad_files"]] == [str(bad)]
    assert 0.0 <= m["accuracy"] <= 1.0
    res = cli("evaluate", run, "--data", copy, "--out", tmp_path / "m.json")
    assert res.returncode == 0, res.stderr
    assert "unreadable, left out" in res.stdout and bad.name in res.stdout.replace("\n", "")
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 11


def test_predict_on_a_missing_path_exits_non_zero(tone_run, tmp_path, cli):
    run, data = tone_run
    wav = next(data.glob("*_test_0.wav"))
    res = cli("predict", run, wav, tmp_path / "nowhere.wav")
    assert res.returncode == 1
    assert one_error_line(res) == "error: 1 of 2 files could not be predicted (listed above)"
    assert "no such file" in res.stdout


# ---- hostile or mistaken input -----------------------------------------------------------------------------

def test_pathological_label_pattern_is_refused_quickly(tmp_path):
    from roomtone.prepare.folder import manifest_from_folder

    (tmp_path / "x").mkdir()
    sf.write(tmp_path / "x" / ("a" * 27 + "!.wav"), np.zeros(800, np.float32), 8000)
    t0 = time.perf_counter()
    with pytest.raises(ParameterError, match=r"repeats a group that itself repeats"):
        manifest_from_folder(tmp_path, label_pattern=r"(?P<label>(a+)+)$")
    assert time.perf_counter() - t0 < 2.0
    res = roomtone("prepare", tmp_path, tmp_path / "p", "--label-pattern", "(?P<label>(a+)+)$", timeout=30)
    assert res.returncode == 2 and "--label-pattern '(?P<label>(a+)+)$' repeats" in one_error_line(res)


def test_one_class_is_an_error_naming_it(tmp_path):
    from roomtone.prepare.pipeline import prepare

    for i in range(3):
        (tmp_path / "d" / "knock").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "d" / "knock" / f"{i}.wav", 0.1 * np.ones(4000, np.float32), 8000)
    with pytest.raises(DataError, match=r"at least 2 classes; found 1: \['knock'\]"):
        prepare(tmp_path / "d", tmp_path / "p")


def test_manifest_mistakes_are_warned_about(tmp_path, tiny_data):
    from roomtone.prepare.pipeline import ManifestWarning, prepare

    files = sorted(tiny_data.rglob("*.wav"))
    lines = ["path,label"] + [f"{f},{f.parent.name}" for f in files]
    lines += [lines[1], f"{files[0]},siren"]  # a duplicate row, and a file with a second label
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(ManifestWarning) as got:
        prepare(tmp_path / "m.csv", tmp_path / "p", clip_seconds=0.5)
    msgs = [str(w.message) for w in got.list if w.category is ManifestWarning]
    assert any("1 duplicate row(s)" in m for m in msgs) and any("two or more labels" in m for m in msgs), msgs
    meta = json.loads((tmp_path / "p" / "prepare.json").read_text())
    assert meta["rows"] == len(files) + 1 and any("duplicate" in w for w in meta["warnings"])
    ids = ["path,label"] + [f"{f},take{i}" for i, f in enumerate(files)]  # one label per file
    (tmp_path / "ids.csv").write_text("\n".join(ids) + "\n")
    with pytest.warns(ManifestWarning, match="36 labels over 36 files"):
        with contextlib.suppress(DataError):
            prepare(tmp_path / "ids.csv", tmp_path / "p2", clip_seconds=0.5)


@pytest.mark.parametrize("case", ["run_json", "yaml_tag", "binary_csv", "model_kwargs", "file_as_dir"])
def test_bad_input_is_one_error_line(case, tone_run, tmp_path, cli):
    run, data = tone_run
    if case == "run_json":
        copy = tmp_path / "run"
        shutil.copytree(run, copy)
        (copy / "run.json").write_text('{"labels": ["a", ')
        res = cli("evaluate", copy)
        expect = "damaged run.json"
    elif case == "yaml_tag":
        (tmp_path / "c.yaml").write_text("epochs: !!python/object/apply:os.system ['touch pwned']\n")
        res = roomtone("train", data, "--out", tmp_path / "r", "--config", tmp_path / "c.yaml", cwd=tmp_path)
        expect = "is not plain YAML"
        assert not (tmp_path / "pwned").exists()
    elif case == "binary_csv":
        (tmp_path / "m.csv").write_bytes(b"path,label\n\xff\xfe\x00\x81\x00garbage\n")
        res = cli("prepare", tmp_path / "m.csv", tmp_path / "p")
        expect = "not a UTF-8 text CSV"
    elif case == "model_kwargs":
        res = cli("train", data, "--out", tmp_path / "r", "--set", "model=vgg_tiny",
                       "--set", "model_kwargs.haed=autopool", "--epochs", "1", "--no-progress")
        expect = "has no argument 'haed'; its arguments are"
    else:
        (tmp_path / "afile").write_text("x")
        res = cli("train", data, "--out", tmp_path / "afile", "--epochs", "1", "--no-progress")
        expect = "is a file; give a folder"
    line = one_error_line(res)
    assert res.returncode == 2 and expect in line, line


def test_debug_shows_the_traceback(tmp_path, cli):
    res = cli("evaluate", tmp_path / "nowhere", "--debug")
    assert res.returncode == 2 and "Traceback" in res.stderr and res.stderr.rstrip().splitlines()[-1].startswith("error:")
    with pytest.raises(CheckpointError):
        from roomtone.train.checkpoint import read_run_info

        (tmp_path / "run.json").write_text("[1, 2]")
        read_run_info(tmp_path)


def test_an_unexpected_error_is_exit_4_and_an_os_error_exit_3(monkeypatch, capsys):
    import typer

    from roomtone.cli import main as cli_main

    app = typer.Typer()

    @app.command()
    def boom(kind: str):
        raise RuntimeError("x") if kind == "bug" else PermissionError(13, "Permission denied", "/root/x")

    monkeypatch.setattr(cli_main, "build_app", lambda: app)
    monkeypatch.delenv("ROOMTONE_DEBUG", raising=False)
    for kind, code, start in (("bug", 4, "error: internal error RuntimeError: x (a bug: rerun with --debug"),
                              ("perm", 3, "error: /root/x: cannot access: permission denied")):
        with pytest.raises(SystemExit) as done:
            cli_main.main([kind])
        err = capsys.readouterr().err
        assert done.value.code == code and err.startswith(start) and err.count("\n") == 1, err
