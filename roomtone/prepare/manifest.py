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
from roomtone.files import atomic_path

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


def read_csv(path: str | os.PathLike, *, encoding: str = "utf-8") -> tuple[list[str], list[dict]]:
    """The header and the rows (dicts) of a CSV file, read whole.

    Raises:
        DataError: the file is not a text CSV (binary, not UTF-8, a NUL byte, a broken quote) or cannot be read.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding=encoding) as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text CSV (byte {exc.start}: {exc.reason}); "
                        "save it as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not a CSV file") from exc


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
    fieldnames, records = read_csv(path)
    missing = {"path", "label"} - set(fieldnames)
    if missing:
        raise DataError(f"{path}: manifest lacks column(s) {sorted(missing)}; it has {fieldnames}")
    rows = []
    for line_no, rec in enumerate(records, start=2):
        p = Path(rec["path"])
        extra = {k: v for k, v in rec.items() if k not in COLUMNS and k is not None}
        try:
            start, end = _float_or_none(rec.get("start")), _float_or_none(rec.get("end"))
        except ValueError as exc:
            raise DataError(f"{path}:{line_no}: start/end must be seconds ({exc})") from exc
        rows.append(
            ManifestRow(
                path=str(p if p.is_absolute() else (base / p)),
                label=rec["label"],
                group=rec.get("group") or "",
                split=rec.get("split") or "",
                start=start,
                end=end,
                extra=extra,
            )
        )
    return rows


def write_manifest(path: str | os.PathLike, rows: list[ManifestRow]) -> Path:
    """Write rows to ``path`` (a ``.csv`` file or a folder that gets ``manifest.csv``), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path / "manifest.csv"
    extra_keys = sorted({k for r in rows for k in r.extra})
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, *extra_keys])
        for r in rows:
            w.writerow(
                [r.path, r.label, r.group, r.split, "" if r.start is None else f"{r.start:.6f}",
                 "" if r.end is None else f"{r.end:.6f}", *(r.extra.get(k, "") for k in extra_keys)]
            )
    return path


def dedupe_rows(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[str]]:
    """``(rows, warnings)``: exact duplicate rows (same path, label, start, end) dropped, keeping the
    first; warnings for the duplicates, for a file (span) given two or more labels, and for a label
    count close to the file count (a label pattern that captures a unique part of the name)."""
    seen: set[tuple] = set()
    out, dup = [], 0
    labels_of_span: dict[tuple, set[str]] = {}
    for r in rows:
        key = (r.path, r.label, r.start, r.end)
        if key in seen:
            dup += 1
            continue
        seen.add(key)
        out.append(r)
        labels_of_span.setdefault((r.path, r.start, r.end), set()).add(r.label)
    msgs = []
    if dup:
        msgs.append(f"{dup} duplicate row(s) (same file, label and span) dropped")
    multi = sorted((k for k, labs in labels_of_span.items() if len(labs) > 1), key=str)
    if multi:
        ex = ", ".join(f"{Path(p).name} {sorted(labels_of_span[(p, a, b)])}" for p, a, b in multi[:3])
        msgs.append(f"{len(multi)} file(s) have two or more labels, e.g. {ex}: a single-label classifier "
                    "sees contradicting targets")
    n_files, n_labels = len({r.path for r in out}), len({r.label for r in out})
    if n_files >= 10 and n_labels > n_files / 2:
        msgs.append(f"{n_labels} labels over {n_files} files: almost one label per file; does the label "
                    "pattern (or column) capture a take number or id instead of the class?")
    return out, msgs


def labels_of(rows: list[ManifestRow]) -> list[str]:
    """Sorted unique labels: the class index order used by datasets and models."""
    return sorted({r.label for r in rows})
