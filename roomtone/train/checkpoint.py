"""Checkpoints written atomically (temp file + ``os.replace``) and loaded safely (``weights_only=True``).

A run directory holds ``config.yaml`` (resolved TrainConfig), ``run.json`` (labels, data_dir,
model_config), ``best.pt`` and ``last.pt`` (``{"model": state_dict, ...}``), ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from roomtone.errors import CheckpointError, OutputExistsError, ParameterError
from roomtone.files import atomic_path, atomic_write_text, sweep_temps


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temp file in the same folder, fsync'd, then ``os.replace``:
    a kill at any moment leaves either the old file or the new one, never a torn one (see roomtone.files)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    return path


RUN_RESULTS = ("last.pt", "best.pt", "metrics.jsonl", "eval")  # what training produced: never lost silently
RUN_METADATA = ("config.yaml", "run.json")  # rewritten by every start


def check_run_dir(out_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """Make ``out_dir`` ready for training without losing a result.

    A folder that already holds results (any of RUN_RESULTS) is continued with ``resume=True`` (it needs
    ``last.pt``), replaced with ``overwrite=True`` (its results are removed first), and refused otherwise.
    A folder with only RUN_METADATA (a run stopped before its first checkpoint) is simply restarted.

    Raises:
        OutputExistsError: results present and neither flag given, or ``resume=True`` without ``last.pt``.
        ParameterError: ``out_dir`` is a file, or both flags are given.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"out_dir={str(out_dir)!r} is a file; give a folder for the run")
    if resume and overwrite:
        raise ParameterError("resume=True and overwrite=True exclude each other: continue the run or replace it")
    present = [n for n in RUN_RESULTS if (out_dir / n).exists()]
    if resume and present and not (out_dir / "last.pt").exists():
        raise OutputExistsError(f"out_dir={str(out_dir)!r} holds results ({', '.join(present)}) but no last.pt to "
                                "resume from; pass overwrite=True to train afresh, or choose another folder")
    if not resume and present:
        if not overwrite:
            raise OutputExistsError(f"out_dir={str(out_dir)!r} already holds a run ({', '.join(present)}); pass "
                                    "resume=True to continue it, overwrite=True to replace it, or choose another folder")
        for n in (*present, *RUN_METADATA):
            p = out_dir / n
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    sweep_temps(out_dir)
    return out_dir


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True``. Raises CheckpointError when missing/unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
        raise CheckpointError(f"{path}: cannot load checkpoint safely ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path}: not a roomtone checkpoint (expected a dict with a 'model' state dict)")
    return obj


def write_run_info(out_dir: str | os.PathLike, *, labels: list[str], model_config: dict,
                   data_dir: str | os.PathLike | None = None, **extra) -> Path:
    """Write ``run.json``: what :func:`roomtone.train.load_run` needs to rebuild the model."""
    info = {"labels": list(labels), "model_config": model_config,
            "data_dir": None if data_dir is None else str(Path(data_dir).resolve()), **extra}
    return atomic_write_text(Path(out_dir) / "run.json", json.dumps(info, indent=2, default=str))


def read_run_info(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir}: not a run directory (no run.json); train one with `roomtone train`")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged run.json ({exc}); retrain, or restore it from a backup") from exc
    if not isinstance(info, dict) or "labels" not in info:
        raise CheckpointError(f"{path}: not a roomtone run.json (no 'labels'); retrain with `roomtone train`")
    return info
