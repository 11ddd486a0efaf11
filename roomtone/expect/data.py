"""Read a prepared dir for the expect stage: rows, labels, sample rate, and the waveforms themselves."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roomtone.errors import DataError, RoomtoneError
from roomtone.prepare.manifest import ManifestRow, labels_of, read_manifest


@dataclass
class Prepared:
    """A prepared dir in memory. ``info`` is ``prepare.json`` (empty dict when absent)."""

    path: Path
    rows: list[ManifestRow]
    labels: list[str]
    sr: int | None
    clip_seconds: float | None
    info: dict = field(default_factory=dict)

    @property
    def y(self) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        return np.array([index[r.label] for r in self.rows], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        """Group per row; rows without a group get their own (so grouped CV degrades to plain CV)."""
        return np.array([r.group or f"__row{i}" for i, r in enumerate(self.rows)])

    @property
    def splits(self) -> np.ndarray:
        return np.array([r.split for r in self.rows])


def read_prepared(path: str | os.PathLike) -> Prepared:
    """Read ``manifest.csv`` (+ ``prepare.json`` when present) from a prepared dir (or a manifest path)."""
    path = Path(path)
    rows = read_manifest(path)
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    folder = path if path.is_dir() else path.parent
    info: dict = {}
    pj = folder / "prepare.json"
    if pj.exists():
        try:
            info = json.loads(pj.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{pj}: unreadable prepare.json ({exc})") from exc
    labels = list(info.get("labels") or labels_of(rows))
    missing = sorted({r.label for r in rows} - set(labels))
    if missing:
        raise DataError(f"{pj}: labels {missing} of the manifest are not in prepare.json's labels {labels}")
    return Prepared(path=folder, rows=rows, labels=labels, sr=info.get("sr"), clip_seconds=info.get("clip_seconds"),
                    info=info)


def load_waveforms(rows: list[ManifestRow], *, sr: int, progress: bool = False,
                   desc: str = "loading audio") -> tuple[list[np.ndarray], list[str]]:
    """Load every row (its ``start``/``end`` segment) as mono float32 ``(time,)`` at ``sr``.

    Returns ``(waves, errors)``: a file that cannot be read becomes an empty array and an error line
    ``"path: reason"`` (a batch job never dies on one file nor drops one silently).
    """
    from roomtone.audio import load

    waves, errors = [], []
    it = rows
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(desc, total=len(rows))
    try:
        for r in it:
            try:
                dur = None if r.end is None else r.end - (r.start or 0.0)
                x, _ = load(r.path, sr=sr, offset=r.start or 0.0, duration=dur)
                waves.append(x.numpy().astype(np.float32, copy=False))
            except RoomtoneError as exc:
                waves.append(np.zeros(0, dtype=np.float32))
                errors.append(f"{r.path}: {exc}")
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return waves, errors
