"""Build a manifest from what a user has: a folder of recordings or a CSV file.

Folder mode: every audio file under ``DATA`` (recursively) becomes one row. Its label is the name of
its parent folder (``DATA/dog/001.wav`` -> ``dog``), or comes from ``label_pattern``, a regular
expression with named groups ``label`` (required), ``group`` and ``split`` (optional). The pattern is
matched in full against the file name first, then searched in the path relative to ``DATA`` (so a
pattern may name folders too). Other named groups are kept as extra manifest columns.

``test_pattern`` (a regular expression searched in the relative path) marks matching files as
``split=test``; this expresses rule-based official splits, e.g. FSDD's "takes 0-4 are test":
``label_pattern=r"(?P<label>\\d)_(?P<group>[a-z]+)_(?P<take>\\d+)\\.wav"``, ``test_pattern=r"_[0-4]\\.wav$"``.

CSV mode: one row per CSV line. Column names are detected (case-insensitive) from common names, or
given with ``columns={"path": "fname", "label": "target", ...}``:

- path: ``path, file, filename, file_name, filepath, audio, wav``
- label: ``label, class, category, target, class_name``
- group: ``group, speaker, speaker_id, fold, session``
- split: ``split, subset, set, partition``

Relative paths in a CSV are resolved against the CSV's folder. Split values are normalised
(``training -> train``, ``val/validation/dev -> valid``, ``eval/evaluation -> test``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.manifest import COLUMNS, ManifestRow, read_csv

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au", ".opus", ".w64", ".caf")

COLUMN_ALIASES = {
    "path": ("path", "file", "filename", "file_name", "filepath", "file_path", "audio", "wav", "fname"),
    "label": ("label", "class", "category", "target", "class_name", "classname"),
    "group": ("group", "speaker", "speaker_id", "fold", "session"),
    "split": ("split", "subset", "set", "partition"),
    "start": ("start",),
    "end": ("end",),
}

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train", "tr": "train",
    "valid": "valid", "val": "valid", "validation": "valid", "dev": "valid", "development": "valid",
    "test": "test", "eval": "test", "evaluation": "test", "testing": "test", "te": "test",
    "": "",
}


def normalise_split(value: str, *, where: str = "") -> str:
    """Map a split name to ``train``/``valid``/``test`` (or ``""`` for unassigned).

    Raises:
        DataError: an unknown split name.
    """
    key = (value or "").strip().lower()
    if key not in _SPLIT_ALIASES:
        raise DataError(
            f"{where}split={value!r} is not a known split; allowed: train, valid, test "
            f"(aliases: {', '.join(k for k in _SPLIT_ALIASES if k)}) or empty"
        )
    return _SPLIT_ALIASES[key]


def has_nested_repeat(pattern: str) -> bool:
    """True when a repeated part of ``pattern`` holds a variable-length repeat (``(a+)+``, ``(\\w*_)*``,
    ``(a{2,3})+``). Python's regex engine backtracks: such a nesting
    can take exponential time on a name that almost matches (38 s on 28 characters for ``(a+)+$``)."""
    try:
        from re import _constants as C  # noqa: N812
        from re import _parser as P  # noqa: N812
    except ImportError:  # Python 3.10
        import sre_constants as C  # noqa: N812
        import sre_parse as P  # noqa: N812
    repeats = {C.MAX_REPEAT, C.MIN_REPEAT}

    def children(op, av):
        if op in repeats or op == getattr(C, "POSSESSIVE_REPEAT", None):
            return [av[2]]
        if op is C.SUBPATTERN:
            return [av[3]]
        if op is C.BRANCH:
            return list(av[1])
        if op in (C.ASSERT, C.ASSERT_NOT):
            return [av[1]]
        if op is getattr(C, "ATOMIC_GROUP", None):
            return [av]
        if op is C.GROUPREF_EXISTS:
            return [p for p in av[1:] if p is not None]
        return []

    def variable(sub) -> bool:
        for op, av in sub:
            if op in repeats and av[0] != av[1]:  # a variable-length repeat: many ways to split the text
                return True
            if any(variable(c) for c in children(op, av)):
                return True
        return False

    def find(sub):
        for op, av in sub:
            if op in repeats and (av[1] == C.MAXREPEAT or av[1] > 1) and variable(av[2]):
                return True
            if op is not getattr(C, "ATOMIC_GROUP", None) and any(find(c) for c in children(op, av)):
                return True
        return False

    return find(P.parse(pattern))


def compile_pattern(pattern: str | None, name: str) -> re.Pattern | None:
    """``re.compile(pattern)``, refusing invalid patterns and nested repeats (see :func:`has_nested_repeat`)
    with a ParameterError that names the argument."""
    if pattern is None:
        return None
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ParameterError(f"{name}={pattern!r} is not a valid regular expression ({exc})") from exc
    if has_nested_repeat(pattern):
        raise ParameterError(f"{name}={pattern!r} repeats a group that itself repeats (like (a+)+): matching "
                             "can take exponential time on names that almost match; drop the outer repeat, "
                             "e.g. (a+) instead of (a+)+")
    return rx


def list_audio_files(root: str | os.PathLike, *, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted, hidden files and folders skipped)."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(extensions):
                out.append(Path(dirpath) / name)
    return sorted(out)


def manifest_from_folder(
    root: str | os.PathLike,
    *,
    label_pattern: str | None = None,
    test_pattern: str | None = None,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
) -> tuple[list[ManifestRow], list[dict]]:
    """Rows for every audio file under ``root``.

    Returns:
        ``(rows, skipped)``: ``skipped`` lists ``{"path", "reason"}`` for files that could not be
        labelled (name does not match ``label_pattern``, or file directly in ``root`` without a pattern).
        Nothing is dropped silently.

    Raises:
        DataError: ``root`` is not a folder, or it holds no audio file.
        ParameterError: a pattern is not a valid regex, or ``label_pattern`` has no ``label`` group.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected a folder of recordings or a CSV file)")
    rx = compile_pattern(label_pattern, "label_pattern")
    if rx is not None and "label" not in rx.groupindex:
        raise ParameterError(
            f"label_pattern={label_pattern!r} has no named group 'label'; write e.g. "
            r"'(?P<label>\d)_(?P<group>[a-z]+)_\d+\.wav' (named groups: label, group, split)"
        )
    test_rx = compile_pattern(test_pattern, "test_pattern")
    files = list_audio_files(root, extensions=extensions)
    if not files:
        raise DataError(f"{root}: no audio files found (extensions {', '.join(extensions)})")
    rows, skipped = [], []
    for f in files:
        rel = f.relative_to(root).as_posix()
        extra: dict[str, str] = {}
        group = split = ""
        if rx is not None:
            m = rx.fullmatch(f.name) or rx.search(rel)
            if m is None:
                skipped.append({"path": str(f), "reason": f"name does not match label_pattern {label_pattern!r}"})
                continue
            d = {k: (v or "") for k, v in m.groupdict().items()}
            label = d.pop("label")
            group = d.pop("group", "")
            split = d.pop("split", "")
            extra = {k: v for k, v in d.items() if k not in COLUMNS}
            try:
                split = normalise_split(split, where=f"{f}: ")
            except DataError as exc:
                skipped.append({"path": str(f), "reason": str(exc)})
                continue
        else:
            if f.parent == root:
                skipped.append({"path": str(f), "reason": "file lies directly in DATA: put files in one folder "
                                "per label, or pass a label pattern"})
                continue
            label = f.parent.name
        if not label:
            skipped.append({"path": str(f), "reason": "empty label"})
            continue
        if test_rx is not None and test_rx.search(rel):
            split = "test"
        rows.append(ManifestRow(path=str(f.resolve()), label=label, group=group, split=split, extra=extra))
    if not rows:
        hint = f" matching label_pattern={label_pattern!r}" if label_pattern else " in label folders"
        raise DataError(f"{root}: no usable audio files{hint} ({len(skipped)} skipped: {skipped[0]['reason']})")
    return rows, skipped


def detect_columns(fieldnames: list[str], columns: dict[str, str] | None = None) -> dict[str, str | None]:
    """Map roomtone's column names (path, label, group, split, start, end) to the CSV's own names.

    ``columns`` entries override detection. Raises DataError when path or label cannot be found or a
    given column does not exist.
    """
    columns = dict(columns or {})
    unknown = set(columns) - set(COLUMN_ALIASES)
    if unknown:
        raise ParameterError(f"columns={columns!r}: unknown key(s) {sorted(unknown)}; allowed: {list(COLUMN_ALIASES)}")
    lower = {f.strip().lower(): f for f in fieldnames}
    out: dict[str, str | None] = {}
    for key, aliases in COLUMN_ALIASES.items():
        if key in columns:
            name = columns[key]
            if name not in fieldnames and name.strip().lower() not in lower:
                raise DataError(f"columns[{key!r}]={name!r} is not a column of the CSV; it has {fieldnames}")
            out[key] = name if name in fieldnames else lower[name.strip().lower()]
            continue
        out[key] = next((lower[a] for a in aliases if a in lower), None)
    for key in ("path", "label"):
        if out[key] is None:
            raise DataError(
                f"CSV has no {key} column (looked for {', '.join(COLUMN_ALIASES[key])}); it has {fieldnames}. "
                f"Name it with columns={{'{key}': '<column>'}} (CLI: --{key}-column)"
            )
    return out


def manifest_from_csv(
    path: str | os.PathLike, *, columns: dict[str, str] | None = None, test_pattern: str | None = None
) -> tuple[list[ManifestRow], list[dict]]:
    """Rows from a CSV file (see the module docstring for column detection).

    Returns:
        ``(rows, skipped)``; lines with an empty path or label, or an unknown split name, are skipped
        with a reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    test_rx = compile_pattern(test_pattern, "test_pattern")
    base = path.parent
    rows, skipped = [], []
    fieldnames, records = read_csv(path, encoding="utf-8-sig")
    if not fieldnames:
        raise DataError(f"{path}: empty CSV (no header line)")
    cols = detect_columns(fieldnames, columns)
    used = {v for v in cols.values() if v}
    for line_no, rec in enumerate(records, start=2):
        raw = (rec.get(cols["path"]) or "").strip()
        label = (rec.get(cols["label"]) or "").strip()
        where = f"{path}:{line_no}: "
        if not raw or not label:
            skipped.append({"path": raw or where, "reason": f"{where}empty path or label"})
            continue
        p = Path(raw)
        p = p if p.is_absolute() else (base / p)
        try:
            split = normalise_split(rec.get(cols["split"]) or "" if cols["split"] else "", where=where)
            start = float(rec[cols["start"]]) if cols["start"] and rec.get(cols["start"]) else None
            end = float(rec[cols["end"]]) if cols["end"] and rec.get(cols["end"]) else None
        except (DataError, ValueError) as exc:
            skipped.append({"path": str(p), "reason": str(exc)})
            continue
        if test_rx is not None and test_rx.search(raw):
            split = "test"
        group = (rec.get(cols["group"]) or "").strip() if cols["group"] else ""
        extra = {k: (v or "") for k, v in rec.items() if k is not None and k not in used and k not in COLUMNS}
        rows.append(ManifestRow(path=str(p.resolve()), label=label, group=group, split=split,
                                start=start, end=end, extra=extra))
    if not rows:
        raise DataError(f"{path}: no usable rows ({len(skipped)} skipped)")
    return rows, skipped


def build_manifest(
    data: str | os.PathLike,
    *,
    label_pattern: str | None = None,
    columns: dict[str, str] | None = None,
    test_pattern: str | None = None,
) -> tuple[list[ManifestRow], list[dict]]:
    """Rows from ``data``: a folder (see :func:`manifest_from_folder`), a CSV file, or a prepared
    folder holding ``manifest.csv`` (read as a CSV). Returns ``(rows, skipped)``."""
    data = Path(data)
    if data.is_file():
        if data.suffix.lower() not in (".csv", ".tsv"):
            raise DataError(f"{data}: expected a folder of recordings or a .csv file, got a {data.suffix or 'plain'} file")
        if label_pattern is not None:
            raise ParameterError("label_pattern applies to a folder; for a CSV name the columns instead (columns=...)")
        return manifest_from_csv(data, columns=columns, test_pattern=test_pattern)
    if not data.exists():
        raise DataError(f"{data}: does not exist (expected a folder of recordings or a .csv file)")
    if (data / "manifest.csv").is_file() and label_pattern is None:
        return manifest_from_csv(data / "manifest.csv", columns=columns, test_pattern=test_pattern)
    return manifest_from_folder(data, label_pattern=label_pattern, test_pattern=test_pattern)
