"""Predict files of any length and sample rate with a trained run: sliding windows with per-window scores
and timestamps, plus a clip-level decision (mean of the window probabilities). Bad files are reported with
a reason and the batch goes on; nothing is dropped silently."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from roomtone.errors import ParameterError
from roomtone.files import atomic_path, atomic_write_json, check_output

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


def window_starts(n: int, *, window: int, hop: int) -> list[int]:
    """Start samples of windows of ``window`` samples every ``hop`` over ``n`` samples; the last window
    is aligned to the end so the tail is covered. One window (start 0) when ``n <= window``."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


@torch.no_grad()
def predict_waveform(model: torch.nn.Module, audio: torch.Tensor, *, window_seconds: float,
                     hop_seconds: float | None = None, batch_size: int = 64) -> dict:
    """Scores of a mono waveform ``(time,)`` at ``model.sr``.

    Returns ``{"windows": [{"start", "end", "scores": [p_c ...]}], "clip_scores": [...]}`` (seconds;
    scores are softmax probabilities; clip scores: the windows combined as in ``evaluate``'s recording
    accuracy, :func:`roomtone.train.metrics.combine_windows`, renormalised to sum to 1). Shorter audio is
    zero-padded to one window.
    """
    from roomtone.train.metrics import combine_windows

    sr = int(model.sr)
    window = max(1, int(round(window_seconds * sr)))
    hop = max(1, int(round((hop_seconds if hop_seconds is not None else window_seconds / 2) * sr)))
    audio = audio.reshape(-1).float()
    n = audio.shape[0]
    starts = window_starts(n, window=window, hop=hop)
    device = next(model.parameters()).device
    probs = []
    for i in range(0, len(starts), batch_size):
        chunk = []
        for s in starts[i:i + batch_size]:
            w = audio[s:s + window]
            if w.shape[0] < window:
                w = torch.nn.functional.pad(w, (0, window - w.shape[0]))
            chunk.append(w)
        probs.append(torch.log_softmax(model(torch.stack(chunk).to(device)).float(), dim=-1).cpu())
    logp = torch.cat(probs)
    p = logp.exp().numpy()
    clip = torch.softmax(combine_windows(logp, torch.zeros(len(starts), dtype=torch.long), n=1)[0], dim=0)
    windows = [{"start": s / sr, "end": min(s + window, n) / sr, "scores": p[k].tolist()}
               for k, s in enumerate(starts)]
    return {"windows": windows, "clip_scores": clip.tolist()}


def collect_files(inputs) -> list[Path]:
    """Files from paths and folders (folders: audio extensions, recursive, sorted). Missing paths are kept
    so that they are reported as bad, not dropped."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            out.append(p)
    return out


def predict_files(run_dir_or_model, inputs, *, labels: list[str] | None = None, window_seconds: float | None = None,
                  hop_seconds: float | None = None, min_seconds: float = 0.1, max_seconds: float | None = 3600.0,
                  out: str | os.PathLike | None = None, device: str = "cpu", progress: bool = False,
                  overwrite: bool = False) -> list[dict]:
    """Predict every file; return one record per file, good or bad.

    A good record: ``{"file", "ok": True, "duration", "sr", "channels", "label", "score", "scores": {label: p},
    "windows": [{"start", "end", "label", "score", "scores"}]}``; a bad one: ``{"file", "ok": False, "error"}``.
    Files shorter than ``min_seconds`` or longer than ``max_seconds`` are bad (reason given); multi-channel
    files are averaged to mono and resampled to the model's rate.

    Args:
        run_dir_or_model: a run directory, or a model (then give ``labels``).
        window_seconds: analysis window (default: the run's ``clip_seconds``, else 1 s);
        hop_seconds: default: the run's ``window_hop``, else half a window.
        out: ``.csv`` (one row per window plus one ``clip`` row per file; bad files with their error) or
            ``.json`` (the records); an existing file is replaced only with ``overwrite=True``.
    """
    from roomtone.audio import info as audio_info
    from roomtone.audio import load

    if out is not None:  # refuse before the work, not after it
        check_output(out, overwrite=overwrite)

    if isinstance(run_dir_or_model, torch.nn.Module):
        model = run_dir_or_model
        if labels is None:
            raise ParameterError("labels=None: pass the class labels together with a model")
        clip = None
    else:
        from roomtone.train.run import load_run

        model, labels, config = load_run(run_dir_or_model, device=device)
        clip = config.clip_seconds
        if hop_seconds is None and window_seconds is None:
            hop_seconds = config.window_hop
    model.eval()
    window_seconds = window_seconds or clip or 1.0
    if window_seconds <= 0:
        raise ParameterError(f"window_seconds={window_seconds!r} must be > 0")
    sr = int(model.sr)
    records = []
    files = collect_files(inputs)
    from rich.progress import track

    for f in track(files, description="predict", disable=not progress):
        rec: dict = {"file": str(f)}
        try:
            if not f.exists():
                raise FileNotFoundError("no such file")  # the record names the file
            meta = audio_info(f)
            if meta.duration < min_seconds:
                raise ValueError(f"too short: {meta.duration:.3f} s < min_seconds={min_seconds} s")
            if max_seconds is not None and meta.duration > max_seconds:
                raise ValueError(f"too long: {meta.duration:.1f} s > max_seconds={max_seconds} s")
            audio, _ = load(f, sr=sr, mono=True)
            if not torch.isfinite(audio).all():
                raise ValueError("audio holds NaN or Inf samples")
            res = predict_waveform(model, audio, window_seconds=window_seconds, hop_seconds=hop_seconds)
        except Exception as exc:  # noqa: BLE001 - a batch job reports the file and goes on
            rec.update({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            records.append(rec)
            continue
        cs = np.asarray(res["clip_scores"])
        rec.update({"ok": True, "duration": meta.duration, "sr": meta.sr, "channels": meta.channels,
                    "label": labels[int(cs.argmax())], "score": float(cs.max()),
                    "scores": {lab: float(v) for lab, v in zip(labels, cs, strict=False)},
                    "windows": [{"start": w["start"], "end": w["end"], "label": labels[int(np.argmax(w["scores"]))],
                                 "score": float(max(w["scores"])),
                                 "scores": {lab: float(v) for lab, v in zip(labels, w["scores"], strict=False)}}
                                for w in res["windows"]]})
        records.append(rec)
    if out is not None:
        write_predictions(records, out, labels=labels, overwrite=overwrite)
    return records


def write_predictions(records: list[dict], out: str | os.PathLike, *, labels: list[str],
                      overwrite: bool = False) -> Path:
    """``.json``: the records; ``.csv``: ``file,ok,error,window,start,end,label,score,<one column per label>``
    (``window`` = index, or ``clip`` for the clip-level decision). Written atomically; an existing ``out``
    is replaced only with ``overwrite=True``."""
    out = check_output(out, overwrite=overwrite)
    if out.suffix.lower() == ".json":
        return atomic_write_json(out, records, indent=1)
    if out.suffix.lower() != ".csv":
        raise ParameterError(f"out={str(out)!r} must end with .csv or .json")
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "ok", "error", "window", "start", "end", "label", "score", *labels])
        for r in records:
            if not r["ok"]:
                w.writerow([r["file"], 0, r["error"], "", "", "", "", "", *([""] * len(labels))])
                continue
            w.writerow([r["file"], 1, "", "clip", 0.0, f"{r['duration']:.3f}", r["label"], f"{r['score']:.6f}",
                        *(f"{r['scores'][lab]:.6f}" for lab in labels)])
            for k, win in enumerate(r["windows"]):
                w.writerow([r["file"], 1, "", k, f"{win['start']:.3f}", f"{win['end']:.3f}", win["label"],
                            f"{win['score']:.6f}", *(f"{win['scores'][lab]:.6f}" for lab in labels)])
    return out
