"""Dataset audit: what is in the folder, and what is wrong with it — before any training.

Per file: sample rate, channels, bit depth, duration, peak, clipping fraction, silence fraction, DC
offset, RMS level and a content hash. Per dataset: class balance, duration statistics, sample
rates/channels/bit depths, exact duplicates, unreadable files with the reason.

Content hash: SHA-256 of the *decoded samples* (float32, ``(frames, channels)``) plus the sample rate
and the channel count. Two files have the same hash when they sound identical sample for sample, even
when the container, name or bit depth (e.g. 16-bit PCM copied to a 24-bit file) differs; it does not
change when only metadata chunks change. (The feature cache keys on the file *bytes* instead, see
``roomtone.features.cache``.)

Bad files (listed with a reason, left out of the prepared dataset, counted): unreadable (empty,
truncated, not audio), zero-length, non-finite samples (NaN/inf), shorter than ``min_duration``, or a
duplicate of an earlier file (the first in path order is kept, later copies are bad; a copy under
another label is flagged as a label conflict). Files with warnings are kept: multi-channel (averaged
on load), an unusual sample rate (resampled on load), clipping, mostly silent, DC offset.

A batch job: one file never stops the audit.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from roomtone.errors import AudioError, ParameterError
from roomtone.files import atomic_write_json
from roomtone.prepare.manifest import ManifestRow
from roomtone.workers import process_pool

AUDIT_VERSION = 1


def _frame_rms_db(mono: np.ndarray, frame: int) -> np.ndarray:
    n = mono.shape[0] // frame
    if n == 0:
        x = mono[None, :]
    else:
        x = mono[: n * frame].reshape(n, frame)
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def audit_file(path: str | os.PathLike, *, silence_db: float = -60.0, clip_level: float = 0.999,
               min_duration: float = 0.05) -> dict:
    """Facts and problems of one file. Never raises for a bad file.

    Returns:
        dict with ``path, ok, reason`` (why it is bad, or ""), ``warnings`` (list of str) and, when
        readable: ``sr, channels, subtype, bit_depth, frames, duration`` (s), ``peak`` (max |x|, full
        scale 1.0), ``clipping`` (fraction of samples with |x| >= ``clip_level``), ``silence`` (fraction
        of 20 ms frames of the mono mix below ``silence_db`` dBFS RMS), ``dc_offset`` (mean of the mono
        mix), ``rms_db`` (dBFS), ``hash`` (see the module docstring).
    """
    import soundfile as sf

    from roomtone.audio import info

    rec: dict = {"path": str(path), "ok": False, "reason": "", "warnings": []}
    try:
        meta = info(path)
    except AudioError as exc:
        rec["reason"] = _strip_path(str(exc), path)
        return rec
    rec.update(sr=meta.sr, channels=meta.channels, subtype=meta.subtype, format=meta.format,
               bit_depth=meta.bit_depth, frames=meta.frames, duration=round(meta.duration, 6))
    if meta.frames <= 0:
        rec["reason"] = "zero-length audio (no samples)"
        return rec
    try:
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile errors come in several types
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
        rec["reason"] = f"cannot decode samples: truncated or corrupt ({text})"
        return rec
    if data.shape[0] == 0:
        rec["reason"] = "no samples could be decoded (truncated file)"
        return rec
    if data.shape[0] != meta.frames:
        rec["warnings"].append(f"header says {meta.frames} frames, decoded {data.shape[0]} (truncated?)")
        rec["frames"] = int(data.shape[0])
        rec["duration"] = round(data.shape[0] / meta.sr, 6)
    finite = np.isfinite(data)
    if not finite.all():
        rec["reason"] = f"{int((~finite).sum())} non-finite sample(s) (NaN or inf)"
        return rec
    mono = data.mean(axis=1)
    absmax = float(np.abs(data).max())
    rec["peak"] = round(absmax, 6)
    rec["clipping"] = round(float((np.abs(data) >= clip_level).mean()), 6)
    frame = max(1, int(round(0.02 * meta.sr)))
    rec["silence"] = round(float((_frame_rms_db(mono, frame) < silence_db).mean()), 6)
    rec["dc_offset"] = round(float(mono.mean()), 6)
    rec["rms_db"] = round(float(20 * np.log10(max(float(np.sqrt(np.mean(mono.astype(np.float64) ** 2))), 1e-10))), 3)
    h = hashlib.sha256(f"{meta.sr}:{data.shape[1]}:".encode())
    h.update(np.ascontiguousarray(data).tobytes())
    rec["hash"] = h.hexdigest()
    if rec["duration"] < min_duration:
        rec["reason"] = f"too short: {rec['duration']:.3f} s < min_duration {min_duration} s"
        return rec
    rec["ok"] = True
    if meta.channels > 1:
        rec["warnings"].append(f"{meta.channels} channels (averaged to mono on load)")
    if absmax == 0.0:
        rec["warnings"].append("digital silence (all samples are zero)")
    elif rec["silence"] > 0.9:
        rec["warnings"].append(f"mostly silent ({rec['silence']:.0%} of frames below {silence_db:g} dBFS)")
    if rec["clipping"] > 0.001:
        rec["warnings"].append(f"clipping ({rec['clipping']:.2%} of samples at full scale)")
    if abs(rec["dc_offset"]) > 0.02:
        rec["warnings"].append(f"DC offset {rec['dc_offset']:+.3f}")
    return rec


WARNING_KINDS = (("channels", "multi-channel"), ("digital silence", "digital silence"), ("mostly silent", "mostly silent"),
                 ("clipping", "clipping"), ("DC offset", "DC offset"), ("sample rate", "sample rate"),
                 ("header says", "truncated"))


def warning_kind(message: str) -> str:
    """A short category for a warning message (multi-channel, clipping, DC offset, ...)."""
    for needle, kind in WARNING_KINDS:
        if needle in message:
            return kind
    return "other"


def _strip_path(msg: str, path) -> str:
    p = str(path)
    return msg[len(p) + 2:] if msg.startswith(p + ": ") else msg


def _audit_chunk(args):
    paths, kw = args
    return [audit_file(p, **kw) for p in paths]


def audit_files(paths: list[str], *, workers: int = 1, progress=None, **kw) -> list[dict]:
    """:func:`audit_file` on every path (in this order), in ``workers`` processes.

    ``progress(n_done)`` is called as chunks finish.
    """
    if workers < 1:
        raise ParameterError(f"workers={workers!r} must be >= 1")
    if workers == 1 or len(paths) < 64:
        out = []
        for p in paths:
            out.append(audit_file(p, **kw))
            if progress:
                progress(1)
        return out
    size = max(16, len(paths) // (workers * 8))
    chunks = [(paths[i:i + size], kw) for i in range(0, len(paths), size)]
    out = []
    with process_pool(workers) as ex:
        for res in ex.map(_audit_chunk, chunks):
            out.extend(res)
            if progress:
                progress(len(res))
    return out


def audit_rows(rows: list[ManifestRow], *, workers: int = 1, skipped: list[dict] | None = None,
               min_duration: float = 0.05, silence_db: float = -60.0, clip_level: float = 0.999,
               progress=None, data: str = "") -> dict:
    """Audit the files of a manifest and summarise the dataset.

    Returns:
        The report (also what ``audit.json`` holds): ``summary``, ``files`` (one record per file, with
        its ``label``), ``bad`` (``path, label, reason``), ``duplicates`` (groups of identical files),
        ``warnings`` (``path, label, warning``), ``skipped`` (files the manifest could not label).
    """
    labels_by_path: dict[str, str] = {}
    for r in rows:
        labels_by_path.setdefault(r.path, r.label)
    paths = sorted(labels_by_path)
    kw = dict(min_duration=min_duration, silence_db=silence_db, clip_level=clip_level)
    files = audit_files(paths, workers=workers, progress=progress, **kw)
    for f in files:
        f["label"] = labels_by_path[f["path"]]
    by_hash: dict[str, list[dict]] = defaultdict(list)
    for f in files:
        if f.get("hash") and f["ok"]:
            by_hash[f["hash"]].append(f)
    duplicates = []
    for h, group in by_hash.items():
        if len(group) < 2:
            continue
        first = group[0]
        labels = sorted({g["label"] for g in group})
        for g in group[1:]:
            g["ok"] = False
            conflict = g["label"] != first["label"]
            g["reason"] = (f"duplicate of {first['path']} (identical samples"
                           + (f"; label conflict: {g['label']!r} vs {first['label']!r})" if conflict else ")"))
        duplicates.append({"hash": h, "paths": [g["path"] for g in group], "labels": labels,
                           "kept": first["path"], "label_conflict": len(labels) > 1})
    ok = [f for f in files if f["ok"]]
    bad = [{"path": f["path"], "label": f["label"], "reason": f["reason"]} for f in files if not f["ok"]]
    warns = [{"path": f["path"], "label": f["label"], "kind": warning_kind(w), "warning": w}
             for f in ok for w in f["warnings"]]
    durations = np.array([f["duration"] for f in ok]) if ok else np.zeros(0)
    sr_counts = Counter(f["sr"] for f in ok)
    if len(sr_counts) > 1:
        common = sr_counts.most_common(1)[0][0]
        for f in ok:
            if f["sr"] != common:
                w = f"sample rate {f['sr']} Hz differs from the most common {common} Hz (resampled on load)"
                f["warnings"].append(w)
                warns.append({"path": f["path"], "label": f["label"], "kind": "sample rate", "warning": w})
    label_files = Counter(f["label"] for f in ok)
    label_seconds: dict[str, float] = defaultdict(float)
    for f in ok:
        label_seconds[f["label"]] += f["duration"]
    summary = {
        "files": len(files),
        "ok": len(ok),
        "bad": len(bad),
        "skipped": len(skipped or []),
        "with_warnings": len({w["path"] for w in warns}),
        "warning_kinds": dict(Counter(w["kind"] for w in warns).most_common()),
        "duplicate_groups": len(duplicates),
        "labels": {lab: {"files": label_files[lab], "seconds": round(label_seconds[lab], 3)}
                   for lab in sorted(label_files)},
        "groups": len({r.group for r in rows if r.group and r.path in {f['path'] for f in ok}}),
        "sample_rates": {str(k): v for k, v in sorted(sr_counts.items())},
        "channels": {str(k): v for k, v in sorted(Counter(f["channels"] for f in ok).items())},
        "bit_depths": {str(k): v for k, v in sorted(Counter(str(f["bit_depth"]) for f in ok).items())},
        "duration": ({"min": round(float(durations.min()), 4), "max": round(float(durations.max()), 4),
                      "mean": round(float(durations.mean()), 4), "median": round(float(np.median(durations)), 4),
                      "total": round(float(durations.sum()), 3)} if ok else {}),
        "imbalance": (round(max(label_files.values()) / max(1, min(label_files.values())), 3) if label_files else None),
    }
    return {"version": AUDIT_VERSION, "data": str(data), "settings": kw, "summary": summary, "bad": bad,
            "duplicates": duplicates, "warnings": warns, "skipped": list(skipped or []), "files": files}


def bad_paths(report: dict) -> set[str]:
    """Paths the audit rules out."""
    return {b["path"] for b in report["bad"]}


def write_audit(report: dict, out_dir: str | os.PathLike, *, html: bool = True) -> Path:
    """Write ``audit.json`` (and ``audit.html`` with plots) into ``out_dir``; returns the JSON path."""
    out = Path(out_dir)
    path = atomic_write_json(out / "audit.json", report, indent=1, ensure_ascii=False)
    if html:
        from roomtone.prepare.audit_html import write_audit_html

        write_audit_html(report, out / "audit.html")
    return path


def print_audit(report: dict, *, console=None, max_rows: int = 20) -> None:
    """A readable summary in the terminal (rich tables): overview, classes, bad files, warnings."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    s = report["summary"]
    t = Table(title="audit", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("files", f"{s['files']} ({s['ok']} ok, [red]{s['bad']} bad[/], {s['skipped']} skipped unlabelled)")
    t.add_row("classes / groups", f"{len(s['labels'])} / {s['groups']}")
    if s["duration"]:
        d = s["duration"]
        t.add_row("duration (s)", f"min {d['min']:.3f}, median {d['median']:.3f}, max {d['max']:.3f}, "
                  f"total {d['total'] / 60:.1f} min")
    t.add_row("sample rates", ", ".join(f"{k} Hz x{v}" for k, v in s["sample_rates"].items()))
    t.add_row("channels", ", ".join(f"{k} x{v}" for k, v in s["channels"].items()))
    t.add_row("bit depths", ", ".join(f"{k} x{v}" for k, v in s["bit_depths"].items()))
    t.add_row("duplicates", str(s["duplicate_groups"]))
    t.add_row("files with warnings", str(s["with_warnings"]))
    if s["imbalance"] is not None:
        t.add_row("class imbalance", f"largest/smallest = {s['imbalance']:.2f}")
    console.print(t)
    if s["labels"]:
        ct = Table(title="class balance")
        ct.add_column("class")
        ct.add_column("files", justify="right")
        ct.add_column("seconds", justify="right")
        for lab, v in list(s["labels"].items())[:max_rows * 5]:
            ct.add_row(Text(lab), str(v["files"]), f"{v['seconds']:.1f}")
        console.print(ct)
    problems = [(b["path"], b["reason"]) for b in report["bad"]] + \
               [(k["path"], "skipped: " + k["reason"]) for k in report["skipped"]]
    if problems:
        bt = Table(title=f"bad files ({len(problems)}): left out", title_style="bold red")
        bt.add_column("file", overflow="fold")
        bt.add_column("reason", overflow="fold")
        for p, why in problems[:max_rows]:
            bt.add_row(Text(p), Text(why))
        if len(problems) > max_rows:
            bt.add_row(f"... {len(problems) - max_rows} more (audit.json)", "")
        console.print(bt)
    if report["warnings"]:
        kinds = Counter(w.get("kind", "other") for w in report["warnings"])
        wt = Table(title=f"warnings ({len(report['warnings'])}: "
                   + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()) + "): files kept")
        wt.add_column("file", overflow="fold")
        wt.add_column("warning", overflow="fold")
        for w in report["warnings"][:max_rows]:
            wt.add_row(Text(w["path"]), Text(w["warning"]))
        if len(report["warnings"]) > max_rows:
            wt.add_row(f"... {len(report['warnings']) - max_rows} more (audit.json)", "")
        console.print(wt)


def audit(data: str | os.PathLike, *, out: str | os.PathLike | None = None, label_pattern: str | None = None,
          columns: dict[str, str] | None = None, workers: int = 1, min_duration: float = 0.05,
          html: bool = True, progress=None) -> dict:
    """Audit a folder, CSV or prepared folder (see :func:`roomtone.prepare.folder.build_manifest`);
    writes ``audit.json`` (+ ``audit.html``) into ``out`` when given. Returns the report."""
    from roomtone.prepare.folder import build_manifest

    rows, skipped = build_manifest(data, label_pattern=label_pattern, columns=columns)
    report = audit_rows(rows, workers=workers, skipped=skipped, min_duration=min_duration, progress=progress,
                        data=str(data))
    if out is not None:
        write_audit(report, out, html=html)
    return report
