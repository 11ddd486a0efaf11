"""Feature cache: features computed once, before training, stored in memory-mappable ``.npy`` shards.

Layout (``cache_root`` defaults to ``PREPARED_DIR/features``)::

    cache_root/<preset>-<config hash[:16]>/
        config.json          the exact feature config (preset, parameters, sr, clip_seconds, buffers' hash)
        shards/<id>.npy      float32, 1-D: the entries of one shard, flattened one after the other
        shards/<id>.json     the shard's table: size, CRC-32 of the whole array, entry key -> [offset, shape,
                             crc32]; written after the .npy
        index.json           row key (path|start|end) -> [shard, offset, shape, crc32]; written when a run completes

An entry (the features of one row, ``(freq, frames)`` float32) is a view into its memory-mapped shard.
Entries are packed into shards of ``shard_size`` because creating one file per entry cost more than
computing it (1-2 ms per file creation on a busy disk vs ~1 ms of compute for a short clip).

Safety rules:

- **Key** of an entry = SHA-256 of (SHA-256 of the audio file's *bytes*, segment start/end, config
  hash). The file bytes are hashed (not the decoded samples) so a key is known without decoding; any
  change to the file gives a new key.
- **Config hash** covers the preset name, every parameter, the sample rate, ``clip_seconds``, the
  cache format version and a hash of the layer's filterbank/window buffers. Changing any feature
  parameter gives another folder and other keys: a stale entry can never be read.
- **Atomic writes**: shard arrays and tables are written to temporary names and renamed into place;
  the table last, so a shard counts only once both are complete. A shard whose ``.npy`` size disagrees
  with its header or its table (half-written by a crash, a full disk, a foreign copy), or whose bytes
  no longer match an entry's CRC-32 (a damaged disk or copy), is detected, deleted and recomputed;
  temporaries of dead runs are removed. ``FeatureDataset`` checks each entry's CRC on its first read.
- **Resume**: the rows are cut into shards in manifest order (``shard_size`` unique entries each)
  independently of what is already cached, so a rerun after an interruption recomputes exactly the
  missing shards with the same composition and the same batch, and every array is byte-identical to
  an uninterrupted run, with any number of workers (one torch thread per worker).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from roomtone.errors import DataError, ParameterError
from roomtone.features.defaults import frontend_defaults
from roomtone.files import atomic_path, sweep_temps
from roomtone.workers import process_pool

CACHE_FORMAT = 2  # 2: every entry carries the CRC-32 of its bytes
PRESETS = ("log-mel", "mel", "mfcc", "spectrogram")
_PARAMETERS = {
    "log-mel": ("n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db"),
    "mel": ("n_fft", "hop_length", "n_mels", "fmin", "fmax"),
    "mfcc": ("n_mfcc", "n_fft", "hop_length", "n_mels"),
    "spectrogram": ("n_fft", "hop_length"),
}


def preset_defaults(preset: str, *, sr: int) -> dict:
    """Default parameters of a built-in preset at ``sr``: the front end of
    :func:`roomtone.features.defaults.frontend_defaults`, plus ``top_db=80`` and ``n_mfcc=20``."""
    base = {**frontend_defaults(sr=sr), "top_db": 80.0, "n_mfcc": 20}
    return {k: base[k] for k in _PARAMETERS[preset]}


def feature_config(preset: str = "log-mel", *, sr: int, clip_seconds: float | None = None, **params) -> dict:
    """The full feature config for ``preset`` at ``sr`` (defaults filled in, unknown parameters refused).

    Presets: ``log-mel`` (:func:`roomtone.features.log_mel`), ``mel`` (mel power), ``mfcc``,
    ``spectrogram`` (power); any other name is looked up in ``roomtone.features.presets.frontend``.
    """
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    if clip_seconds is not None and clip_seconds <= 0:
        raise ParameterError(f"clip_seconds={clip_seconds!r} must be > 0 or None")
    if preset in _PARAMETERS:
        unknown = set(params) - set(_PARAMETERS[preset])
        if unknown:
            raise ParameterError(f"preset {preset!r} has no parameter(s) {sorted(unknown)}; "
                                 f"allowed: {sorted(_PARAMETERS[preset])}")
        full = {**preset_defaults(preset, sr=int(sr)), **{k: v for k, v in params.items() if v is not None}}
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
    """SHA-256 hex of the config JSON, the layer's resolved settings and repr, and its buffers
    (filterbank, window, DFT kernel)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    layer = layer if layer is not None else build_layer(config)
    # resolved settings (e.g. hop_length=None -> n_fft // 4), so a changed default is a changed config
    resolved = {a: getattr(layer, a, None) for a in ("sr", "n_fft", "hop_length", "win_length", "n_mels", "fmin",
                                                       "fmax", "top_db", "center", "n_mfcc")}
    h.update(json.dumps(resolved, sort_keys=True, default=str).encode() + repr(layer).encode())
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


def npy_is_complete(path: str | os.PathLike) -> tuple[bool, tuple | None]:
    """``(ok, shape)``: ok when ``path`` is a ``.npy`` file with a readable header and exactly the bytes
    the header announces (a truncated or half-written file fails)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            offset = f.tell()
        size = os.path.getsize(path)
    except Exception:
        return False, None
    return size == offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, tuple(shape)


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    # no fsync: after a power cut a short file fails the size check; no sweep per file (workers write
    # concurrently; the folder is swept once per run)
    with atomic_path(path, keep_suffix=True, sweep=False) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def _atomic_text(path: Path, text: str) -> None:
    with atomic_path(path, keep_suffix=True, sweep=False) as tmp:
        tmp.write_text(text, encoding="utf-8")


def entry_crc(arr: np.ndarray) -> int:
    """CRC-32 of an entry's float32 bytes."""
    return zlib.crc32(np.ascontiguousarray(arr, dtype=np.float32).data)


def read_shard_table(shards: Path, shard_id: str) -> dict | None:
    """The table ``{key: [offset, shape, crc32]}`` of a complete, consistent shard whose bytes still match
    the CRC-32 recorded for the whole shard, else None."""
    table_path, array_path = shards / f"{shard_id}.json", shards / f"{shard_id}.npy"
    try:
        table = json.loads(table_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok, shape = npy_is_complete(array_path)
    if not ok or shape != (table.get("size"),):
        return None
    if entry_crc(np.load(array_path, mmap_mode="r")) != table.get("crc32"):  # one pass over the whole shard
        return None
    return table["entries"]


_WORKER: dict = {}


def _init_worker(config: dict) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["config"] = config
    _WORKER["layer"] = build_layer(config)


def _load(path: str, *, sr: int, start: float | None, end: float | None) -> tuple[torch.Tensor, int]:
    """``roomtone.audio.load(path, sr=sr, offset=start, duration=end - start)`` (mono mix, soxr HQ
    resampling) with a single open of the file: the same samples, less overhead per file."""
    import soundfile as sf
    import torch

    from roomtone.audio import load, resample_array
    from roomtone.errors import AudioError

    offset = start or 0.0
    duration = None if end is None else max(end - offset, 1e-6)
    try:
        with sf.SoundFile(path) as f:
            file_sr = f.samplerate
            a = int(round(offset * file_sr))
            b = None if duration is None else a + int(round(duration * file_sr))
            if a:
                f.seek(a)
            data = f.read(frames=-1 if b is None else b - a, dtype="float32", always_2d=True)
    except Exception:  # the reference loader produces the precise error message
        return load(path, sr=sr, offset=offset, duration=duration)
    if data.shape[0] == 0 or not np.isfinite(data).all():
        raise AudioError(f"{path}: no samples, or non-finite samples (NaN or inf)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if file_sr != sr:
        mono = resample_array(mono, orig_sr=file_sr, target_sr=sr)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)), sr


def load_audio(path: str, start: float | None, end: float | None, *, config: dict) -> torch.Tensor:
    """The waveform ``(time,)`` the cache computes features of (resampled, segment, ``clip_seconds``)."""
    from roomtone.prepare.segment import fix_length

    audio, sr = _load(path, sr=config["sr"], start=start, end=end)
    if config.get("clip_seconds") is not None:
        audio = fix_length(audio, length=max(1, int(round(config["clip_seconds"] * sr))))
    return audio


def compute_batch(audios: list, layer) -> list[np.ndarray]:
    """Features of several waveforms: one zero-padded batch with ``lengths`` (valid frames sliced back).

    One waveform is computed alone; a layer without ``lengths`` support computes them one by one.
    """
    import torch

    with torch.inference_mode():
        if len(audios) == 1:
            return [np.ascontiguousarray(layer(audios[0]).numpy(), dtype=np.float32)]
        lengths = torch.tensor([a.shape[-1] for a in audios], dtype=torch.long)
        batch = torch.zeros(len(audios), int(lengths.max()))
        for i, a in enumerate(audios):
            batch[i, : a.shape[-1]] = a
        try:
            out, frames = layer(batch, lengths)
        except TypeError:
            return [np.ascontiguousarray(layer(a).numpy(), dtype=np.float32) for a in audios]
        return [np.ascontiguousarray(out[i, ..., : int(frames[i])].numpy(), dtype=np.float32)
                for i in range(len(audios))]


def compute_features(path: str, start: float | None, end: float | None, *, config: dict, layer) -> np.ndarray:
    """Features ``(freq, frames)`` float32 of one row, computed alone."""
    return compute_batch([load_audio(path, start, end, config=config)], layer)[0]


def _sub_batches(order: list[int], lengths: list[int], *, max_ratio: float = 1.5,
                 max_samples: int = 4_000_000) -> list[list[int]]:
    """Group items of similar length (deterministic): sorted by length, a new group when the longest
    would exceed ``max_ratio`` x the shortest or the padded batch ``max_samples``."""
    groups: list[list[int]] = []
    for i in sorted(order, key=lambda k: (lengths[k], k)):
        if groups:
            g = groups[-1]
            lo, n = lengths[g[0]], len(g) + 1
            if lengths[i] <= max_ratio * max(lo, 1) and lengths[i] * n <= max_samples:
                g.append(i)
                continue
        groups.append([i])
    return groups


def _work_shard(task):
    """Compute one shard: load its rows, batch by similar length, write array then table."""
    shard_id, items, shards_dir = task
    config, layer = _WORKER["config"], _WORKER["layer"]
    audios, keys, failed = [], [], []
    for key, path, start, end in items:
        try:
            audios.append(load_audio(path, start, end, config=config))
            keys.append(key)
        except Exception as exc:  # a bad file is reported, never stops the run
            failed.append({"path": path, "reason": (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]})
    feats: list[np.ndarray | None] = [None] * len(audios)
    for group in _sub_batches(list(range(len(audios))), [a.shape[-1] for a in audios]):
        try:
            for i, f in zip(group, compute_batch([audios[i] for i in group], layer), strict=True):
                feats[i] = f
        except Exception as exc:
            for i in group:
                failed.append({"path": items[i][1], "reason": f"feature computation failed: {exc}"[:300]})
    table, parts, offset = {}, [], 0
    for k, f in zip(keys, feats, strict=True):
        if f is None:
            continue
        table[k] = [offset, list(f.shape), entry_crc(f)]
        parts.append(f.reshape(-1))
        offset += f.size
    if table:
        shards = Path(shards_dir)
        data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        _atomic_save(shards / f"{shard_id}.npy", data)
        _atomic_text(shards / f"{shard_id}.json", json.dumps({"size": offset, "crc32": entry_crc(data), "entries": table}))
    return shard_id, table, failed, len(items)


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
    shard_size: int = 64,
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
        shard_size: unique entries per shard (part of the layout: keep it when resuming).
        progress: ``progress(n)`` called as rows finish (reused ones count too).
        stop_after: stop after this many shards without writing the index (tests use it to simulate
            an interrupted run).

    Returns:
        ``{"cache_dir", "config", "rows", "computed", "reused", "recomputed_invalid" (entries of
        damaged shards), "failed": [{path, reason}]}``.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers={workers!r} must be a positive integer")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ParameterError(f"shard_size={shard_size!r} must be a positive integer")
    rows = list(rows)
    if not rows:
        raise DataError("cache_features: no rows")
    config = feature_config(preset, sr=sr, clip_seconds=clip_seconds, **params)
    layer = build_layer(config)
    chash = config_hash(config, layer)
    out = Path(cache_root) / f"{preset}-{chash[:16]}"
    shards = out / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    full_cfg = {**config, "hash": chash, "shard_size": shard_size}
    cfg_path = out / "config.json"
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()).get("hash") != chash:
            raise DataError(f"{out}: holds another feature config; remove the folder")
    else:
        _atomic_text(cfg_path, json.dumps(full_cfg, indent=1, sort_keys=True))
    sweep_temps(shards)  # temporaries of killed runs (their process is gone)

    # 1. entry keys, in manifest order (unique)
    hashes: dict[str, str] = {}
    failed: list[dict] = []
    entry_of_row: dict[str, str] = {}
    items: list[tuple[str, str, float | None, float | None]] = []
    seen: set[str] = set()
    for r in rows:
        rk = row_key(r)
        if rk in entry_of_row:
            continue
        try:
            if r.path not in hashes:
                hashes[r.path] = file_hash(r.path)
        except OSError as exc:
            failed.append({"path": r.path, "reason": f"cannot read file ({exc.strerror or exc})"})
            continue
        key = hashlib.sha256(f"{hashes[r.path]}|{rk.split('|', 1)[1]}|{chash}".encode()).hexdigest()
        if key not in seen:  # identical content + segment under two names share one entry
            seen.add(key)
            items.append((key, r.path, r.start, r.end))
        entry_of_row[rk] = key

    # 2. what is already there (complete shards only)
    known: dict[str, tuple[str, int, list]] = {}
    invalid = 0
    for table_path in sorted(shards.glob("*.json")):
        sid = table_path.stem
        table = read_shard_table(shards, sid)
        if table is None:
            try:
                invalid += len(json.loads(table_path.read_text()).get("entries", {}))
            except (OSError, ValueError):
                invalid += 1
            table_path.unlink(missing_ok=True)
            (shards / f"{sid}.npy").unlink(missing_ok=True)
            continue
        for k, (off, shape, crc) in table.items():
            known[k] = (f"shards/{sid}.npy", off, shape, crc)
    for orphan in shards.glob("*.npy"):  # array without a table: its run died between the two renames
        if not (shards / f"{orphan.stem}.json").exists():
            orphan.unlink(missing_ok=True)

    # 3. shards in manifest order, fixed composition; compute only what is missing
    tasks = []
    reused = 0
    for c in range(0, len(items), shard_size):
        chunk = items[c:c + shard_size]
        todo = [it for it in chunk if it[0] not in known]
        reused += len(chunk) - len(todo)
        if todo:
            sid = hashlib.sha256("\n".join(it[0] for it in todo).encode()).hexdigest()[:32]
            tasks.append((sid, todo, str(shards)))
    if progress and reused:
        progress(reused)
    if stop_after is not None:
        tasks = tasks[:stop_after]
    computed = 0

    def _done(res):
        nonlocal computed
        sid, table, bad, n = res
        for k, (off, shape, crc) in table.items():
            known[k] = (f"shards/{sid}.npy", off, shape, crc)
        computed += len(table)
        failed.extend(bad)
        if progress:
            progress(n)

    if workers == 1 or len(tasks) < 2:
        _init_worker(config)
        for t in tasks:
            _done(_work_shard(t))
    else:
        with process_pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(config,)) as ex:
            for res in ex.map(_work_shard, tasks):
                _done(res)
    report = {"cache_dir": str(out), "config": full_cfg, "rows": len(rows), "computed": computed,
              "reused": reused, "recomputed_invalid": invalid, "failed": failed}
    if stop_after is not None:
        return report
    index = {"format": CACHE_FORMAT, "config": full_cfg,
             "entries": {rk: list(known[k]) for rk, k in entry_of_row.items() if k in known},
             "failed": failed}
    _atomic_text(out / "index.json", json.dumps(index, ensure_ascii=False))
    return report


def entry_array(cache_dir: str | os.PathLike, entry, *, mmaps: dict | None = None, verify: bool = False) -> np.ndarray:
    """The array of an index entry ``[shard, offset, shape, crc32]``: a read-only view into the memory-mapped
    shard (``mmaps`` caches the opened shards). ``verify``: check the CRC-32 (DataError when damaged)."""
    shard, off, shape = entry[:3]
    mm = None if mmaps is None else mmaps.get(shard)
    if mm is None:
        mm = np.load(Path(cache_dir) / shard, mmap_mode="r")
        if mmaps is not None:
            mmaps[shard] = mm
    n = int(np.prod(shape, dtype=np.int64))
    arr = mm[off:off + n].reshape(shape)
    if verify and len(entry) > 3 and entry_crc(arr) != entry[3]:
        raise DataError(f"{Path(cache_dir) / shard}: the entry at offset {off} is damaged (CRC-32 mismatch); "
                        "run `roomtone features cache` again: it recomputes damaged shards")
    return arr


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
