"""Checkpoints written atomically (temp file + ``os.replace``) and loaded safely (``weights_only=True``).

A run directory holds ``config.yaml`` (resolved TrainConfig), ``run.json`` (labels, data_dir,
model_config), ``best.pt`` and ``last.pt`` (``{"model": state_dict, ...}``), ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from roomtone.errors import CheckpointError


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temp file in the same folder, fsync'd, then ``os.replace``:
    a kill at any moment leaves either the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


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
    return json.loads(path.read_text())
