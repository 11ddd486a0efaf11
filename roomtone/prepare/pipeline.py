"""``prepare``: a folder (or CSV) of recordings -> an audited, leak-free, trimmed PREPARED DIR.

Steps: build the manifest (:mod:`roomtone.prepare.folder`) -> audit every file and leave out the bad
ones (:mod:`roomtone.prepare.audit`) -> optional silence trim / sliding windows
(:mod:`roomtone.prepare.segment`) -> grouped, stratified splits (:mod:`roomtone.prepare.splits`) ->
write ``manifest.csv``, ``prepare.json``, ``audit.json``, ``audit.html``.

``prepare.json`` = ``{"version", "labels", "sr", "clip_seconds", "settings": {every argument},
"counts": {split: {label: n}}, "bad_files", "skipped_files", "groups_overlap"}``. ``sr`` is the
given rate, or the most common rate among the good files (datasets resample everything to it).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

from roomtone.errors import DataError, OutputExistsError, ParameterError
from roomtone.files import atomic_dir, atomic_write_json

PREPARE_VERSION = 1


class ManifestWarning(UserWarning):
    """Duplicate rows, a file with two labels, or about one label per file."""

PREPARED_FILES = ("manifest.csv", "prepare.json", "audit.json")  # any of them: the folder holds a prepared dataset


def prepare(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    label_pattern: str | None = None,
    columns: dict[str, str] | None = None,
    valid: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    group_split: bool = True,
    clip_seconds: float | None = None,
    trim_db: float | None = None,
    window: float | None = None,
    hop: float | None = None,
    sr: int | None = None,
    overwrite: bool = False,
    test_pattern: str | None = None,
    test_groups: list[str] | None = None,
    valid_groups: list[str] | None = None,
    min_duration: float = 0.05,
    workers: int = 1,
    html: bool = True,
    console=None,
    progress=None,
) -> Path:
    """Prepare ``data`` into ``out_dir`` and return ``out_dir``.

    Args:
        data: a folder of recordings (label = parent folder, or ``label_pattern``), a CSV file, or a
            folder holding ``manifest.csv``.
        out_dir: the prepared folder to write.
        label_pattern: regex with named groups ``label`` (required), ``group``, ``split``, matched on
            file names (e.g. ``r"(?P<label>\\d)_(?P<group>[a-z]+)_\\d+\\.wav"`` for FSDD).
        columns: CSV column names, e.g. ``{"path": "fname", "label": "target"}`` (else detected).
        valid, test: split fractions of the rows that have no split yet.
        seed: split seed (same seed, same split).
        group_split: keep each group on one side of every split.
        clip_seconds: fixed clip length the datasets crop/pad to (recorded in ``prepare.json``).
        trim_db: trim leading/trailing parts more than this many dB below the loudest frame.
        window, hop: cut sliding windows of ``window`` seconds every ``hop`` seconds (default: hop = window).
        sr: working sample rate in Hz (None: the most common rate in the data).
        overwrite: replace an existing prepared folder. The new folder is written next to it and takes
            its place in one step: an interrupted ``prepare`` leaves the old folder intact.
        test_pattern: regex on the relative path; matching files are test (FSDD official: ``r"_[0-4]\\.wav$"``).
        test_groups, valid_groups: leave-groups-out split (these groups go to test / valid).
        min_duration: files shorter than this (seconds) are bad.
        workers: audit processes.
        html: also write ``audit.html``.
        console: a ``rich.console.Console`` to print the audit and split tables to (None: silent).

    Raises:
        DataError: nothing usable in ``data``.
        OutputExistsError: ``out_dir`` already prepared and ``overwrite`` is False.
    """
    settings = dict(data=str(Path(data).resolve()), label_pattern=label_pattern, columns=columns, valid=valid,
                    test=test, seed=seed, group_split=group_split, clip_seconds=clip_seconds, trim_db=trim_db,
                    window=window, hop=hop, sr=sr, test_pattern=test_pattern, test_groups=test_groups,
                    valid_groups=valid_groups, min_duration=min_duration)
    if sr is not None and (not isinstance(sr, int) or sr <= 0):
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz) or None")
    if clip_seconds is not None and clip_seconds <= 0:
        raise ParameterError(f"clip_seconds={clip_seconds!r} must be > 0 seconds or None")
    if trim_db is not None and trim_db <= 0:
        raise ParameterError(f"trim_db={trim_db!r} must be > 0 dB (how far below the peak counts as silence)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out_dir={str(out)!r} is a file; give a folder for the prepared dataset")
    done = [n for n in PREPARED_FILES if (out / n).exists()]
    if done and not overwrite:
        raise OutputExistsError(f"out_dir={str(out)!r} is already prepared ({', '.join(done)}); pass overwrite=True "
                                "to replace it, or choose another folder")
    with atomic_dir(out) as stage:  # all of it or nothing: the old folder stays intact until the end
        return _prepare(data, out, stage, settings=settings, label_pattern=label_pattern, columns=columns,
                        test_pattern=test_pattern, workers=workers, was_prepared=done, min_duration=min_duration,
                        progress=progress, html=html, trim_db=trim_db, window=window, hop=hop, valid=valid,
                        test=test, seed=seed, group_split=group_split, test_groups=test_groups,
                        valid_groups=valid_groups, sr=sr, clip_seconds=clip_seconds, console=console)


def _prepare(data, out: Path, stage: Path, *, settings, label_pattern, columns, test_pattern, workers, was_prepared,
             min_duration, progress, html, trim_db, window, hop, valid, test, seed, group_split, test_groups,
             valid_groups, sr, clip_seconds, console) -> Path:
    """The steps of :func:`prepare`, writing into ``stage`` (renamed to ``out`` by the caller)."""
    from roomtone.prepare.audit import audit_rows, bad_paths, print_audit, write_audit
    from roomtone.prepare.folder import build_manifest
    from roomtone.prepare.manifest import dedupe_rows, labels_of, write_manifest
    from roomtone.prepare.segment import segment_rows
    from roomtone.prepare.splits import (
        assign_splits,
        format_split_table,
        groups_overlap,
        split_counts,
        split_warnings,
    )


    rows, skipped = build_manifest(data, label_pattern=label_pattern, columns=columns, test_pattern=test_pattern)
    rows, manifest_warnings = dedupe_rows(rows)
    report = audit_rows(rows, workers=workers, skipped=skipped, min_duration=min_duration, progress=progress,
                        data=str(data))
    bad = bad_paths(report)
    rows = [r for r in rows if r.path not in bad]
    classes = labels_of(rows)
    if rows and len(classes) < 2:
        raise DataError(f"{data}: a classifier needs at least 2 classes; found {len(classes)}: {classes} "
                        "(label = parent folder, or pass label_pattern / a label column)")
    if not rows:
        where = out / "failed-audit" if was_prepared else out  # an earlier prepared folder stays as it was
        write_audit(report, where, html=html)
        raise DataError(f"{data}: every file is bad or unlabelled; see {where / 'audit.json'}")
    seg_errors: list[dict] = []
    if trim_db is not None or window is not None:
        rows = segment_rows(rows, trim_db=trim_db, window=window, hop=hop,
                            on_error=lambda r, why: seg_errors.append({"path": r.path, "label": r.label,
                                                                       "reason": why}))
        if seg_errors:
            report["bad"].extend(seg_errors)
            report["summary"]["bad"] += len(seg_errors)
    rows = assign_splits(rows, valid=valid, test=test, seed=seed, group_split=group_split,
                         test_groups=test_groups, valid_groups=valid_groups, warn=console is None)
    write_audit(report, stage, html=html)
    if sr is None:
        rates = Counter(f["sr"] for f in report["files"] if f["ok"])
        sr = int(rates.most_common(1)[0][0]) if rates else None
    labels = labels_of(rows)
    overlap = groups_overlap(rows)
    write_manifest(stage / "manifest.csv", rows)
    meta = {
        "version": PREPARE_VERSION,
        "labels": labels,
        "sr": sr,
        "clip_seconds": clip_seconds,
        "settings": settings,
        "counts": split_counts(rows),
        "rows": len(rows),
        "bad_files": len(report["bad"]),
        "skipped_files": len(skipped),
        "groups_overlap": overlap,
        "warnings": manifest_warnings + split_warnings(rows, expect={"train"}),
    }
    atomic_write_json(stage / "prepare.json", meta, indent=1, ensure_ascii=False)
    if console is None:
        for msg in manifest_warnings:  # the split warnings were raised by assign_splits
            warnings.warn(msg, ManifestWarning, stacklevel=3)
    else:
        from rich.text import Text

        print_audit(report, console=console)
        console.print(format_split_table(rows))
        for msg in meta["warnings"]:
            console.print(Text("warning: ", style="yellow") + Text(msg))
        console.print(Text(f"prepared {len(rows)} rows, {len(labels)} classes -> {out}"))
    return out
