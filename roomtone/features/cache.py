"""Feature cache: features computed once, before training, stored as memory-mappable ``.npy`` files.

Layout (``cache_root`` defaults to ``PREPARED_DIR/features``)::

    cache_root/<preset>-<config hash[:16]>/
        config.json      the exact feature config (preset, parameters, sr, clip_seconds, buffers' hash)
        index.json       row key (path|start|end) -> entry file, shape; written when a run completes
        entries/ab/<key>.npy

Safety rules:

- **Key** of an entry = SHA-256 of (SHA-256 of the audio file's *bytes*, segment start/end, config
  hash). The file bytes are hashed (not the decoded samples) so a key is known without decoding; any
  change to the file gives a new key.
- **Config hash** covers the preset name, every parameter, the sample rate, ``clip_seconds``, the
  cache format version and a hash of the layer's filterbank/window buffers. Changing any feature
  parameter gives another folder and other keys: a stale entry can never be read.
- **Atomic writes**: an entry is written to a temporary name in the same folder and renamed into
  place. An entry whose size disagrees with its ``.npy`` header (a half-written file from a crash, a
  full disk or a foreign copy) is detected and recomputed.
- **Resume**: a rerun after an interruption reuses every valid entry and computes only the rest;
  the arrays are byte-identical to an uninterrupted run (each file is computed alone, in float32,
  with one thread per worker).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from roomtone.errors import DataError, ParameterError

CACHE_FORMAT = 1
PRESETS = ("log-mel", "mel", "mfcc", "spectrogram")
_DEFAULTS = {
    "log-mel": dict(n_fft=1024, hop_length=None, n_mels=64, fmin=0.0, fmax=None, top_db=80.0),
    "mel": dict(n_fft=1024, hop_length=None, n_mels=64, fmin=0.0, fmax=None),
    "mfcc": dict(n_mfcc=20, n_fft=1024, hop_length=None, n_mels=64),
    "spectrogram": dict(n_fft=1024, hop_length=None),
}


def feature_config(preset: str = "log-mel", *, sr: int, clip_seconds: float | None = None, **params) -> dict:
    """The full feature config for ``preset`` at ``sr`` (defaults filled in, unknown parameters refused).

    Presets: ``log-mel`` (:func:`roomtone.features.log_mel`), ``mel`` (mel power), ``mfcc``,
    ``spectrogram`` (power); any other name is looked up in ``roomtone.features.presets.frontend``.
    """
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    if clip_seconds is not None and clip_seconds <= 0:
        raise ParameterError(f"clip_seconds={clip_seconds!r} must be > 0 or None")
    if preset in _DEFAULTS:
        unknown = set(params) - set(_DEFAULTS[preset])
        if unknown:
            raise ParameterError(f"preset {preset!r} has no parameter(s) {sorted(unknown)}; "
                                 f"allowed: {sorted(_DEFAULTS[preset])}")
        full = {**_DEFAULTS[preset], **params}
    else:
        full = dict(params)
    return {"format": CACHE_FORMAT, "preset": preset, "sr": int(sr), "clip_seconds": clip_seconds, "params": full}


def build_layer(config: dict):
    """The ``nn.Module`` (eval mode, float32) that computes ``config``'s features: ``(time,) -> (freq, frames)``."""
    import roomtone.features as F

    p, sr, name = dict(config["params"]), config["sr"], config["preset"]
    if name == "log-mel":
        layer = F.log_mel(sr=sr, **p)
    elif name == "mel":
        layer = F.MelSpectrogram(sr, p.pop("n_fft"), p.pop("hop_length"), n_mels=p.pop("n_mels"), fmin=p.pop("fmin"),
                                 fmax=p.pop("fmax"))
    elif name == "mfcc":
        layer = F.MFCC(sr, p.pop("n_mfcc"), p.pop("n_fft"), p.pop("hop_length"), p.pop("n_mels"))
    elif name == "spectrogram":
        layer = F.Spectrogram(p.pop("n_fft"), p.pop("hop_length"))
    else:
        try:
            from roomtone.features.presets import frontend
        except ImportError as exc:
            raise ParameterError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}") from exc
        try:
            layer = frontend(name, sr=sr, **p)
        except TypeError:
            layer = frontend(name, **p)
        if getattr(layer, "sr", sr) != sr:
            raise ParameterError(f"preset {name!r} runs at {layer.sr} Hz, not sr={sr}; pass sr={layer.sr}")
    return layer.eval().float()


def config_hash(config: dict, layer=None) -> str:
    """SHA-256 hex of the config JSON and the layer's buffers (filterbank, window, DFT kernel)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    layer = layer if layer is not None else build_layer(config)
    for name, buf in sorted(list(layer.named_buffers()) + list(layer.named_parameters())):
        h.update(name.encode())
        h.update(buf.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_hash(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def row_key(row) -> str:
    """The index key of a manifest row: ``path|start|end`` (seconds with 6 decimals, empty for None)."""
    s = "" if row.start is None else f"{row.start:.6f}"
    e = "" if row.end is None else f"{row.end:.6f}"
    return f"{row.path}|{s}|{e}"


def entry_is_valid(path: str | os.PathLike) -> bool:
    """True when ``path`` is a complete ``.npy`` file: a readable header and exactly the bytes it announces."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            offset = f.tell()
        size = os.path.getsize(path)
    except Exception:
        return False
    return size == offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)  # no fsync: after a power cut a short file fails entry_is_valid
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _remove_stale_temporaries(entries: Path) -> int:
    """Delete temporary files left by killed runs (``.<key>.<pid>.tmp.npy`` whose process is gone)."""
    n = 0
    for tmp in entries.glob("*/.*.tmp.npy"):
        try:
            pid = int(tmp.name.split(".")[-3])
        except (ValueError, IndexError):
            pid = -1
        if pid <= 0 or not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            n += 1
    return n


_WORKER: dict = {}


def _init_worker(config: dict) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["config"] = config
    _WORKER["layer"] = build_layer(config)


def compute_features(path: str, start: float | None, end: float | None, *, config: dict, layer) -> np.ndarray:
    """Features of one row: load (resample to ``config['sr']``, segment, ``clip_seconds``) and run ``layer``."""
    import torch

    from roomtone.audio import load
    from roomtone.prepare.segment import fix_length

    offset = start or 0.0
    duration = None if end is None else max(end - offset, 1e-6)
    audio, sr = load(path, sr=config["sr"], offset=offset, duration=duration)
    if config.get("clip_seconds") is not None:
        audio = fix_length(audio, length=max(1, int(round(config["clip_seconds"] * sr))))
    with torch.inference_mode():
        out = layer(audio.to(torch.float32))
    return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)


def _work(task):
    key, path, start, end, dest = task
    try:
        arr = compute_features(path, start, end, config=_WORKER["config"], layer=_WORKER["layer"])
        _atomic_save(Path(dest), arr)
        return key, list(arr.shape), ""
    except Exception as exc:  # a bad file is reported, never stops the run
        return key, None, (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]


def cache_dir_for(cache_root: str | os.PathLike, config: dict) -> Path:
    """The folder of ``config``'s entries under ``cache_root``."""
    return Path(cache_root) / f"{config['preset']}-{config_hash(config)[:16]}"


def cache_features(
    rows,
    cache_root: str | os.PathLike,
    *,
    preset: str = "log-mel",
    sr: int,
    clip_seconds: float | None = None,
    workers: int = 1,
    progress=None,
    stop_after: int | None = None,
    **params,
) -> dict:
    """Compute (or reuse) the features of every row and write the cache index.

    Args:
        rows: manifest rows.
        cache_root: folder holding one subfolder per feature config.
        preset, params: feature config (see :func:`feature_config`).
        sr, clip_seconds: audio as the datasets load it (resampled, cropped/padded).
        workers: processes (1: in this process).
        progress: ``progress(n)`` called as entries finish (reused ones count too).
        stop_after: stop after computing this many entries without writing the index (tests use it
            to simulate an interrupted run).

    Returns:
        ``{"cache_dir", "config", "rows", "computed", "reused", "recomputed_invalid", "failed": [{path, reason}]}``.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers={workers!r} must be a positive integer")
    rows = list(rows)
    if not rows:
        raise DataError("cache_features: no rows")
    config = feature_config(preset, sr=sr, clip_seconds=clip_seconds, **params)
    layer = build_layer(config)
    chash = config_hash(config, layer)
    out = Path(cache_root) / f"{preset}-{chash[:16]}"
    (out / "entries").mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    full_cfg = {**config, "hash": chash}
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()).get("hash") != chash:
            raise DataError(f"{out}: holds another feature config; remove the folder")
    else:
        _atomic_text(cfg_path, json.dumps(full_cfg, indent=1, sort_keys=True))
    _remove_stale_temporaries(out / "entries")
    hashes: dict[str, str] = {}
    failed: list[dict] = []
    tasks, entries, shapes = [], {}, {}
    reused = invalid = 0
    for r in rows:
        k = row_key(r)
        if k in entries:
            continue
        try:
            fh = hashes.get(r.path) or hashes.setdefault(r.path, file_hash(r.path))
        except OSError as exc:
            failed.append({"path": r.path, "reason": f"cannot read file ({exc.strerror or exc})"})
            continue
        key = hashlib.sha256(f"{fh}|{k.split('|', 1)[1]}|{chash}".encode()).hexdigest()
        rel = f"entries/{key[:2]}/{key}.npy"
        entries[k] = rel
        dest = out / rel
        if dest.exists():
            if entry_is_valid(dest):
                reused += 1
                shapes[k] = None
                if progress:
                    progress(1)
                continue
            invalid += 1
            dest.unlink()
        tasks.append((k, r.path, r.start, r.end, str(dest)))
    if stop_after is not None:
        tasks = tasks[:stop_after]
    computed = 0

    def _done(res):
        nonlocal computed
        k, shape, err = res
        if err:
            failed.append({"path": k.split("|", 1)[0], "reason": err})
            entries.pop(k, None)
        else:
            computed += 1
            shapes[k] = shape
        if progress:
            progress(1)

    if workers == 1 or len(tasks) < 2:
        _init_worker(config)
        for t in tasks:
            _done(_work(t))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(config,)) as ex:
            for res in ex.map(_work, tasks, chunksize=max(1, min(64, len(tasks) // (workers * 4)))):
                _done(res)
    report = {"cache_dir": str(out), "config": full_cfg, "rows": len(rows), "computed": computed,
              "reused": reused, "recomputed_invalid": invalid, "failed": failed}
    if stop_after is not None:
        return report
    for k in list(shapes):
        if shapes[k] is None:
            shapes[k] = list(np.load(out / entries[k], mmap_mode="r").shape)
    index = {"format": CACHE_FORMAT, "config": full_cfg,
             "entries": {k: v for k, v in entries.items() if k in shapes},
             "shapes": {k: shapes[k] for k in entries if k in shapes}, "failed": failed}
    _atomic_text(out / "index.json", json.dumps(index, ensure_ascii=False))
    return report


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_cache_index(cache_dir: str | os.PathLike) -> dict:
    """The ``index.json`` of one cache folder (raises DataError when the run never completed)."""
    p = Path(cache_dir) / "index.json"
    if not p.exists():
        raise DataError(f"{cache_dir}: no index.json (the cache run did not finish; run `roomtone features cache` "
                        f"again, it resumes)")
    return json.loads(p.read_text(encoding="utf-8"))


def cache_prepared(prepared_dir: str | os.PathLike, *, preset: str = "log-mel", cache_root=None, sr: int | None = None,
                   clip_seconds: float | None = None, workers: int = 1, progress=None, **params) -> dict:
    """:func:`cache_features` for a prepared folder (rows, ``sr`` and ``clip_seconds`` from ``prepare.json``);
    the cache goes to ``PREPARED_DIR/features`` unless ``cache_root`` is given."""
    from roomtone.prepare.dataset import load_prepared

    rows, meta = load_prepared(prepared_dir)
    sr = sr if sr is not None else meta.get("sr")
    if sr is None:
        raise ParameterError(f"{prepared_dir}: prepare.json has no sr; pass sr=")
    clip = clip_seconds if clip_seconds is not None else meta.get("clip_seconds")
    root = Path(cache_root) if cache_root is not None else Path(prepared_dir) / "features"
    return cache_features(rows, root, preset=preset, sr=int(sr), clip_seconds=clip, workers=workers,
                          progress=progress, **params)
