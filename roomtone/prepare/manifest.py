"""The manifest: one row per example (a file, or a segment of one), written as ``manifest.csv``.

Columns: ``path,label,group,split,start,end``. ``path`` is absolute, or relative to the manifest's
folder; ``start``/``end`` are seconds (empty for the whole file); ``split`` is ``train``, ``valid``,
``test`` or empty (not assigned yet). Extra columns are kept in ``ManifestRow.extra``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from roomtone.errors import DataError

COLUMNS = ("path", "label", "group", "split", "start", "end")


@dataclass(frozen=True)
class ManifestRow:
    """One example. ``start``/``end`` in seconds, None for the whole file."""

    path: str
    label: str
    group: str = ""
    split: str = ""
    start: float | None = None
    end: float | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def with_split(self, split: str) -> ManifestRow:
        return replace(self, split=split)

    @property
    def duration(self) -> float | None:
        """Segment length in seconds when the row is a segment, else None."""
        return None if self.start is None or self.end is None else self.end - self.start


def _float_or_none(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read ``manifest.csv``; relative paths are resolved against the manifest's folder.

    Raises:
        DataError: the file is missing or lacks the ``path`` or ``label`` column.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.exists():
        raise DataError(f"{path}: manifest not found (run `roomtone prepare` first)")
    base = path.parent
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: manifest lacks column(s) {sorted(missing)}; it has {reader.fieldnames}")
        rows = []
        for rec in reader:
            p = Path(rec["path"])
            extra = {k: v for k, v in rec.items() if k not in COLUMNS and k is not None}
            rows.append(
                ManifestRow(
                    path=str(p if p.is_absolute() else (base / p)),
                    label=rec["label"],
                    group=rec.get("group") or "",
                    split=rec.get("split") or "",
                    start=_float_or_none(rec.get("start")),
                    end=_float_or_none(rec.get("end")),
                    extra=extra,
                )
            )
    return rows


def write_manifest(path: str | os.PathLike, rows: list[ManifestRow]) -> Path:
    """Write rows to ``path`` (a ``.csv`` file or a folder that gets ``manifest.csv``), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    extra_keys = sorted({k for r in rows for k in r.extra})
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, *extra_keys])
        for r in rows:
            w.writerow(
                [r.path, r.label, r.group, r.split, "" if r.start is None else f"{r.start:.6f}",
                 "" if r.end is None else f"{r.end:.6f}", *(r.extra.get(k, "") for k in extra_keys)]
            )
    os.replace(tmp, path)
    return path


def labels_of(rows: list[ManifestRow]) -> list[str]:
    """Sorted unique labels: the class index order used by datasets and models."""
    return sorted({r.label for r in rows})
