"""Offline rendering: write augmented copies of a dataset plus a manifest of every drawn parameter.

``render(data, out_dir, ...)`` is what ``roomtone simulate`` runs. Each output is determined by
``(seed, source path, copy)`` alone (its own generator), so an interrupted run resumes where it
stopped and gives the same files as an uninterrupted one. Progress is appended to
``OUT_DIR/simulate.log.jsonl``; ``manifest.csv`` is written at the end. The settings are kept in
``OUT_DIR/simulate.json``: a run with other settings into the same folder needs ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from rich.markup import escape

from roomtone.errors import AudioError, DataError, ParameterError
from roomtone.files import atomic_write_json

LOG = "simulate.log.jsonl"
SETTINGS = "simulate.json"
SKIPPED = "skipped.csv"


def parse_range(text: str | float | tuple, *, name: str = "snr") -> tuple[float, float]:
    """``"0:20"`` -> ``(0.0, 20.0)``; ``"5"`` -> ``(5.0, 5.0)``. Reversed ranges are refused."""
    if isinstance(text, (tuple, list)):
        lo, hi = (float(v) for v in text)
    elif isinstance(text, (int, float)):
        lo = hi = float(text)
    else:
        parts = str(text).split(":")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ParameterError(f"--{name} {text!r} must be 'LOW:HIGH' or one number") from None
        if len(vals) not in (1, 2):
            raise ParameterError(f"--{name} {text!r} must be 'LOW:HIGH' or one number")
        lo, hi = vals[0], vals[-1]
    if lo > hi:
        raise ParameterError(f"--{name} {text!r} is reversed; give LOW:HIGH with LOW <= HIGH")
    return lo, hi


def build_chain(*, sr: int, noise=None, snr_db=(0.0, 20.0), rooms=None, mic=None, split: str = "train",
                seed: int = 0, rt60=None):
    """The transform applied by :func:`render`: ``Reverberate`` (if ``rooms``; ``rt60``: ``(low, high)``
    seconds of measured RT60 to draw from) -> noise (``noise``: a folder/CSV, or ``"colored"``) ->
    ``SimulateMicrophone`` (if ``mic``: a preset or comma-separated presets)."""
    from roomtone.prepare.transforms import (
        AddColoredNoise,
        AddNoise,
        Compose,
        Reverberate,
        SimulateMicrophone,
    )

    steps = []
    if rooms is not None:
        kw = {"seed": seed} if rooms == "simulated" else None
        lo, hi = (None, None) if rt60 is None else parse_range(rt60, name="rt60")
        steps.append(Reverberate(rooms, sr=sr, split=split, bank_kw=kw, min_rt60=lo, max_rt60=hi))
    if noise is not None:
        lo, hi = snr_db
        if str(noise) == "colored":
            steps.append(AddColoredNoise(sr=sr, min_snr_db=lo, max_snr_db=hi))
        else:
            steps.append(AddNoise(noise, sr=sr, split=split, min_snr_db=lo, max_snr_db=hi))
    if mic is not None:
        mics = [m.strip() for m in mic.split(",")] if isinstance(mic, str) else mic
        steps.append(SimulateMicrophone(mics, sr=sr))
    if not steps:
        raise ParameterError("nothing to simulate: give at least one of noise, rooms, mic")
    return Compose(steps)


def _seed_for(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "little") & ((1 << 62) - 1)


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def _flat(params: dict) -> dict:
    """A few columns for people reading the manifest (the full JSON is in ``params``)."""
    out = {}
    for step in params.get("transforms", []):
        if not step.get("applied", True):
            continue
        for key in ("snr_db", "noise", "color", "room", "rt60_s", "drr_db", "mic", "gain_db"):
            if key in step:
                v = step[key]
                out[key] = f"{v:.3f}" if isinstance(v, float) else str(v)
    return out


def render(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    noise=None,
    snr_db=(0.0, 20.0),
    rooms=None,
    mic=None,
    copies: int = 1,
    seed: int = 0,
    sr: int | None = None,
    split: str = "auto",
    subtype: str = "PCM_16",
    overwrite: bool = False,
    console=None,
    progress: bool = True,
    rt60=None,
) -> Path:
    """Write ``copies`` augmented versions of every example of ``data`` (folder, CSV or prepared dir).

    Outputs are ``OUT_DIR/<relative path without extension>__sim<k>.wav`` (sub-folders kept) and
    ``OUT_DIR/manifest.csv`` with the source's label/group/split plus ``source``, ``copy``, ``seed``,
    ``params`` (JSON of every drawn parameter) and readable columns (``snr_db``, ``noise``, ``room``,
    ``rt60_s``, ``mic``...). Copies keep their source's ``group`` (the source's path when it has none),
    so a grouped split never puts a copy and its source on different sides.

    ``rt60``: ``(low, high)`` or ``"LOW:HIGH"`` seconds: draw only rooms whose measured RT60 is in range.
    ``split`` picks the noise/room bank split: ``"auto"`` (default) uses the ``test`` banks for rows whose
    split is ``test`` and the ``train`` banks for every other row, so test examples are never corrupted
    with training noises or rooms; ``"train"``/``"test"`` force one bank split for all rows.

    Returns:
        The manifest path.

    Raises:
        DataError: ``out_dir`` is inside the input folder; a finished/different run exists and
            ``overwrite`` is False; nothing could be rendered.
    """
    from roomtone.audio import load, save
    from roomtone.prepare.folder import build_manifest
    from roomtone.prepare.manifest import ManifestRow, write_manifest

    data, out = Path(data), Path(out_dir)
    if not data.exists():
        raise DataError(f"{data}: does not exist (expected a folder of recordings or a CSV)")
    in_folder = data if data.is_dir() else data.parent
    if _inside(out, in_folder):
        raise DataError(f"refusing to write into the input folder: {out} is inside {in_folder}; choose another OUT_DIR")
    if split not in ("auto", "train", "test"):
        raise ParameterError(f"split={split!r} must be 'auto', 'train' or 'test'")
    if noise is None and rooms is None and mic is None:
        raise ParameterError("nothing to simulate: give at least one of noise, rooms, mic")
    if not isinstance(copies, int) or copies < 1:
        raise ParameterError(f"copies={copies!r} must be a positive integer")
    snr_db = parse_range(snr_db)
    settings = {"data": str(data.resolve()), "noise": None if noise is None else str(noise), "snr_db": list(snr_db),
                "rooms": None if rooms is None else str(rooms), "mic": mic, "copies": copies, "seed": seed, "sr": sr,
                "split": split, "subtype": subtype, "version": 1}
    if rt60 is not None:  # only when given, so that runs made before this option still resume
        if rooms is None:
            raise ParameterError("rt60 selects rooms: give rooms too")
        settings["rt60"] = list(parse_range(rt60, name="rt60"))
    manifest = out / "manifest.csv"
    if out.exists() and any(out.iterdir()):
        old = json.loads((out / SETTINGS).read_text()) if (out / SETTINGS).exists() else None
        if not overwrite:
            if old is None:
                raise DataError(f"{out} exists and is not a simulate output; pass overwrite=True or choose another out_dir")
            if old != settings:
                changed = sorted(k for k in settings if old.get(k) != settings[k])
                raise DataError(f"{out} holds a run with other settings ({changed}); pass overwrite=True to replace it")
            if manifest.exists():
                raise DataError(f"{out} already holds this finished run ({manifest}); pass overwrite=True to redo it")
        else:
            if (out / LOG).exists():  # remove the outputs of the previous run
                for line in (out / LOG).read_text().splitlines():
                    try:
                        (out / json.loads(line)["path"]).unlink(missing_ok=True)
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue
            for name in (LOG, SKIPPED, "manifest.csv"):
                (out / name).unlink(missing_ok=True)
    atomic_write_json(out / SETTINGS, settings, indent=1)

    rows, bad_rows = build_manifest(data)
    done: dict[str, dict] = {}
    if (out / LOG).exists():
        for line in (out / LOG).read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by an interruption
    skipped = [(str(b.get("path", b)), str(b.get("reason", ""))) for b in bad_rows]
    chains: dict[tuple[int, str], object] = {}
    # outputs mirror the sources' paths relative to their common folder, so equal file names never collide
    base = data if data.is_dir() else data.parent
    if rows and not all(_inside(Path(r.path), base) for r in rows):
        base = Path(os.path.commonpath([str(Path(r.path).resolve().parent) for r in rows]))

    def chain_for(rate: int, row_split: str):
        bank_split = split if split != "auto" else ("test" if row_split == "test" else "train")
        if (rate, bank_split) not in chains:
            chains[rate, bank_split] = build_chain(sr=rate, noise=noise, snr_db=snr_db, rooms=rooms, mic=mic,
                                                   split=bank_split, seed=seed, rt60=rt60)
        return chains[rate, bank_split]

    bar = task = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=console, transient=False)
        bar.start()
        task = bar.add_task("simulate", total=len(rows) * copies)
    try:
        with open(out / LOG, "a", encoding="utf-8") as log:
            for row in rows:
                src = Path(row.path)
                rel = src.resolve().relative_to(base.resolve())
                seg = "" if row.start is None else f"@{row.start:.3f}-{row.end:.3f}"
                keys = [f"{rel.as_posix()}{seg}#{k}" for k in range(copies)]
                if all(k in done for k in keys):
                    if bar:
                        bar.advance(task, copies)
                    continue
                try:
                    dur = None if row.end is None else row.end - (row.start or 0.0)
                    audio, rate = load(src, sr=sr, offset=row.start or 0.0, duration=dur)
                    if audio.numel() < 2:
                        raise AudioError(f"{src}: fewer than 2 samples")
                except AudioError as exc:
                    skipped.append((str(src), str(exc)))
                    if console is not None:
                        console.print(f"[yellow]skipped[/] {escape(str(src))}: {escape(str(exc))}")
                    if bar:
                        bar.advance(task, copies)
                    continue
                chain = chain_for(rate, row.split)
                for k, key in enumerate(keys):
                    if key in done:
                        if bar:
                            bar.advance(task)
                        continue
                    s = _seed_for(seed, key)
                    y = chain(audio, generator=torch.Generator().manual_seed(s), sources=[str(src)])
                    params = chain.last_params[0]
                    stem = rel.with_suffix("").as_posix() + (seg.replace(":", "-") if seg else "")
                    target = out / f"{stem}__sim{k}.wav"
                    peak = float(y.abs().max())
                    save(target, y, rate, subtype=subtype)
                    rec = {"key": key, "path": target.relative_to(out).as_posix(), "label": row.label,
                           "group": row.group or rel.as_posix(), "split": row.split, "source": str(src),
                           "copy": k, "seed": s, "sr": rate, "peak": round(peak, 6), "params": params}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    done[key] = rec
                    if bar:
                        bar.advance(task)
    finally:
        if bar:
            bar.stop()
    if skipped:
        import csv

        with open(out / SKIPPED, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path", "reason"])
            w.writerows(skipped)
    if not done:
        raise DataError(f"nothing was rendered from {data}: {len(skipped)} file(s) skipped (see {out / SKIPPED})")
    out_rows = []
    for rec in done.values():
        extra = {"source": rec["source"], "copy": str(rec["copy"]), "seed": str(rec["seed"]), "sr": str(rec["sr"]),
                 "peak": str(rec["peak"]), "params": json.dumps(rec["params"], sort_keys=True), **_flat(rec["params"])}
        out_rows.append(ManifestRow(rec["path"], rec["label"], rec["group"], rec["split"], extra=extra))
    out_rows.sort(key=lambda r: r.path)
    write_manifest(manifest, out_rows)
    if console is not None:
        console.print(f"wrote {len(out_rows)} file(s) and {manifest}; {len(skipped)} skipped"
                      + (f" (see {out / SKIPPED})" if skipped else ""))
    return manifest
