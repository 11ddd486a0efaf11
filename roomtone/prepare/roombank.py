"""RIR banks: measured (folder or CSV, any channel count and sample rate) or simulated shoebox rooms
(pyroomacoustics, built once, cached on disk). Each entry records its measured RT60 and DRR.

Entries are stored trimmed: from ``pre_ms`` before the direct-path peak (which removes the fixed
propagation/simulator delay) to where the energy decay reaches -60 dB or the noise floor of the
measurement (at most ``max_seconds``), zero
padded to one ``(n, L)`` tensor; ``peaks`` holds each direct-path index for :func:`convolve_rir`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from roomtone.errors import AudioError, DataError, ParameterError
from roomtone.files import atomic_path
from roomtone.prepare.banks import NamedBank
from roomtone.prepare.rooms import decay_end, measure_drr, measure_rt60, normalize_rir, rfft, schroeder_db

SIM_VERSION = 1


def default_cache_dir() -> Path:
    """``$ROOMTONE_CACHE`` or ``~/.cache/roomtone`` (read when called, never at import)."""
    return Path(os.environ.get("ROOMTONE_CACHE", "~/.cache/roomtone")).expanduser()


def _trim(h: torch.Tensor, *, sr: int, pre_ms: float, max_seconds: float | None) -> tuple[torch.Tensor, int]:
    h = h.reshape(-1).float()
    p = int(h.abs().argmax())
    start = max(0, p - int(round(pre_ms * 1e-3 * sr)))
    h = h[start:]
    edc = schroeder_db(h)
    below = torch.nonzero(edc < -60.0).flatten()
    end = int(below[0]) if below.numel() else h.numel()
    end = min(end, decay_end(h, sr=sr))  # no point keeping the measurement's noise floor
    if max_seconds is not None:
        end = min(end, int(round(max_seconds * sr)))
    end = max(end, p - start + 1)
    return h[:end].contiguous(), p - start


class RoomBank(NamedBank):
    """RIRs at one sample rate. Attributes: ``sr``, ``names``, ``data`` ``(n, L)``, ``peaks`` ``(n,)``,
    ``lengths`` ``(n,)``, ``rt60`` and ``drr`` (lists, seconds / dB; NaN RT60 = decay too short to
    measure), ``meta`` (per-entry dicts, e.g. simulated room sizes), ``skipped`` ``[(path, reason)]``."""

    entry_kind = "room"

    def __init__(self, rirs: list[torch.Tensor], names: list[str], *, sr: int, meta: list[dict] | None = None,
                 skipped=(), pre_ms: float = 2.0, max_seconds: float | None = 2.0, peaks: list[int] | None = None):
        if not rirs:
            detail = "; ".join(f"{p}: {r}" for p, r in skipped) or "no RIRs given"
            raise DataError(f"the room bank is empty ({detail})")
        self.sr = int(sr)
        self.names = list(names)
        self.meta = list(meta) if meta is not None else [{} for _ in rirs]
        self.skipped = list(skipped)
        if peaks is None:
            trimmed, peaks = [], []
            for h in rirs:
                t, p = _trim(h, sr=self.sr, pre_ms=pre_ms, max_seconds=max_seconds)
                trimmed.append(t)
                peaks.append(p)
        else:  # already trimmed (a cached bank)
            trimmed = [h.reshape(-1).float() for h in rirs]
        self.lengths = torch.tensor([t.numel() for t in trimmed], dtype=torch.long)
        self.data = torch.zeros(len(trimmed), int(self.lengths.max()))
        for i, t in enumerate(trimmed):
            self.data[i, : t.numel()] = t
        self.peaks = torch.tensor(peaks, dtype=torch.long)
        self.rt60 = [measure_rt60(t, sr=self.sr) for t in trimmed]
        self.drr = [measure_drr(t, sr=self.sr) for t in trimmed]
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        rt = [r for r in self.rt60 if not math.isnan(r)]
        span = f"RT60 {min(rt):.2f}-{max(rt):.2f} s" if rt else "RT60 unknown"
        return f"RoomBank({len(self)} RIRs at {self.sr} Hz, {span}, {len(self.skipped)} skipped)"

    def on(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(data, peaks)`` on ``device``, copied there once and kept."""
        key = str(torch.device(device))
        if key not in self._on:
            self._on[key] = (self.data.to(device), self.peaks.to(device))
        return self._on[key]

    def __getstate__(self) -> dict:  # DataLoader workers: ship the CPU data only
        state = dict(self.__dict__)
        state["_on"], state["_spec"] = {}, {}
        return state

    def spectra(self, n: int, *, device, normalize: str = "energy") -> torch.Tensor | None:
        """rfft (size ``n``) of every normalised entry ``(entries, n // 2 + 1)``, computed once per
        ``(n, device, normalize)``; None when that would take more than 64 MB (then compute per batch)."""
        if len(self) * (n // 2 + 1) * 8 > 64 * 2**20:
            return None
        if not hasattr(self, "_spec"):
            self._spec = {}
        key = (n, str(torch.device(device)), normalize)
        if key not in self._spec:
            if sum(v.numel() * 8 for v in self._spec.values()) > 256 * 2**20:  # variable lengths: bound the cache
                self._spec.clear()
            data, peaks = self.on(device)
            self._spec[key] = rfft(normalize_rir(data, peaks, normalize), n)
        return self._spec[key]

    def draw(self, batch: int, *, generator: torch.Generator) -> list[int]:
        """``batch`` entry indices, uniformly."""
        u = torch.rand(batch, generator=generator, device=generator.device, dtype=torch.float64).cpu()
        return (u * len(self)).long().clamp_max(len(self) - 1).tolist()

    def table(self) -> list[dict]:
        """One dict per entry: name, rt60_s, drr_db, length_s and its meta."""
        return [{"name": n, "rt60_s": r, "drr_db": d, "length_s": int(ln) / self.sr, **m}
                for n, r, d, ln, m in zip(self.names, self.rt60, self.drr, self.lengths, self.meta, strict=True)]

    def subset(self, indices: list[int]) -> RoomBank:
        if not indices:
            raise DataError("the room bank subset is empty")
        new = object.__new__(RoomBank)
        new.sr, new.skipped, new._on, new._spec = self.sr, list(self.skipped), {}, {}
        new.names = [self.names[i] for i in indices]
        new.meta = [self.meta[i] for i in indices]
        new.rt60 = [self.rt60[i] for i in indices]
        new.drr = [self.drr[i] for i in indices]
        idx = torch.tensor(indices, dtype=torch.long)
        new.lengths, new.peaks = self.lengths[idx], self.peaks[idx]
        new.data = self.data[idx, : int(new.lengths.max())].clone()
        return new

    def filter(self, *, rt60: tuple[float, float] | None = None, drr: tuple[float, float] | None = None) -> RoomBank:
        """Entries whose measured RT60 (s) and DRR (dB) fall in the given ``(low, high)`` ranges.

        Raises:
            ParameterError: a reversed range. DataError: nothing is left (the message lists what there is).
        """
        for name, rng in (("rt60", rt60), ("drr", drr)):
            if rng is not None and rng[0] > rng[1]:
                raise ParameterError(f"{name}={rng!r} is reversed; give (low, high) with low <= high")
        keep = [i for i in range(len(self))
                if (rt60 is None or (not math.isnan(self.rt60[i]) and rt60[0] <= self.rt60[i] <= rt60[1]))
                and (drr is None or drr[0] <= self.drr[i] <= drr[1])]
        if not keep:
            have = ", ".join(f"{n}: RT60 {r:.2f} s, DRR {d:.1f} dB" for n, r, d in zip(self.names, self.rt60, self.drr, strict=True))
            raise DataError(f"no RIR has rt60 in {rt60} and drr in {drr}; the bank has {have}")
        return self.subset(keep)

    @classmethod
    def from_path(cls, path, *, sr: int, split: str | None = "train", channel: int = 0,
                  max_seconds: float | None = 2.0) -> RoomBank:
        """Measured RIRs from a folder or CSV (see :func:`roomtone.prepare.banks.list_bank_files`).

        Multi-channel files: ``channel`` is picked (0 = the omni W channel of B-format; files with fewer
        channels use their last one). Every file is resampled to ``sr``. Unreadable or silent files are skipped
        and listed in ``bank.skipped``.
        """
        from roomtone.audio import info, load
        from roomtone.prepare.banks import list_bank_files

        if not isinstance(sr, int) or sr <= 0:
            raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
        rirs, names, meta, skipped = [], [], [], []
        for f in list_bank_files(path, split=split):
            try:
                ch = min(channel, info(f.path).channels - 1)
                h, _ = load(f.path, sr=sr, channel=ch)
            except AudioError as exc:
                skipped.append((f.path, str(exc)))
                continue
            if float(h.double().pow(2).sum()) <= 1e-12:
                skipped.append((f.path, "no energy (all zeros)"))
                continue
            rirs.append(h)
            names.append(f.name)
            meta.append({"channel": ch})
        return cls(rirs, names, sr=sr, meta=meta, skipped=skipped, max_seconds=max_seconds)

    @classmethod
    def simulated(
        cls,
        *,
        sr: int,
        n_rooms: int = 8,
        size: tuple[tuple[float, float], ...] = ((3.0, 7.0), (3.0, 6.0), (2.4, 3.2)),
        rt60: tuple[float, float] = (0.15, 0.6),
        min_distance: float = 0.5,
        margin: float = 0.3,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        max_seconds: float | None = 2.0,
    ) -> RoomBank:
        """Shoebox rooms simulated with pyroomacoustics (image source method), built once and cached.

        Room sizes (m, per axis), target RT60 (s) and source/microphone positions (uniform inside the
        room, ``margin`` m from the walls, at least ``min_distance`` m apart) are drawn from ``seed``.
        The bank is saved as ``<cache_dir>/rooms/shoebox-<hash>.npz`` (hash of every setting) and loaded
        from there next time. The measured RT60 of each entry is recorded next to its target.
        """
        if not isinstance(n_rooms, int) or n_rooms < 1:
            raise ParameterError(f"n_rooms={n_rooms!r} must be a positive integer")
        if len(size) != 3 or any(lo > hi or lo <= 2 * margin for lo, hi in size):
            raise ParameterError(f"size={size!r} must be three (low, high) ranges in metres, low <= high, > 2*margin")
        if not 0 < rt60[0] <= rt60[1]:
            raise ParameterError(f"rt60={rt60!r} must be (low, high) seconds with 0 < low <= high")
        settings = {"v": SIM_VERSION, "max_seconds": max_seconds, "sr": sr, "n": n_rooms, "size": [list(map(float, s)) for s in size],
                    "rt60": list(map(float, rt60)), "min_distance": min_distance, "margin": margin, "seed": seed}
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        path = folder / "rooms" / f"shoebox-{digest}.npz"
        if path.exists():
            try:
                z = np.load(path, allow_pickle=False)
                lens = z["lengths"]
                rirs = [torch.from_numpy(z["rirs"][i, : lens[i]].copy()) for i in range(len(lens))]
                meta = json.loads(str(z["meta"]))
                bank = cls(rirs, [m["name"] for m in meta], sr=sr, meta=meta, peaks=z["peaks"].tolist())
                bank.cache_path = path
                return bank
            except Exception:  # a corrupt cache is rebuilt
                path.unlink(missing_ok=True)
        rirs, meta = _simulate(settings, progress=progress)
        lens = np.array([len(h) for h in rirs])
        arr = np.zeros((len(rirs), int(lens.max())), dtype=np.float32)
        for i, h in enumerate(rirs):
            arr[i, : len(h)] = h
        bank = cls([torch.from_numpy(h) for h in rirs], [m["name"] for m in meta], sr=sr, meta=meta,
                   max_seconds=max_seconds)
        # store the trimmed entries (peak at pre_ms) so a reload is the same bank
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no suffix
            np.savez_compressed(f, rirs=bank.data.numpy(), lengths=bank.lengths.numpy(),
                                peaks=bank.peaks.numpy(), meta=np.array(json.dumps(meta)))
        bank.cache_path = path
        return bank


def _simulate(settings: dict, *, progress: bool) -> tuple[list[np.ndarray], list[dict]]:
    try:
        import pyroomacoustics as pra
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise DataError("simulated rooms need pyroomacoustics: pip install pyroomacoustics") from exc
    rng = np.random.default_rng(settings["seed"])
    sr, margin = settings["sr"], settings["margin"]
    rirs, meta = [], []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"simulating {settings['n']} shoebox rooms", total=settings["n"])
    try:
        while len(rirs) < settings["n"]:
            dims = [float(rng.uniform(lo, hi)) for lo, hi in settings["size"]]
            target = float(rng.uniform(*settings["rt60"]))
            try:
                absorption, max_order = pra.inverse_sabine(target, dims)
            except ValueError:  # this RT60 is impossible in this room: draw again
                continue
            for _ in range(100):
                src = [float(rng.uniform(margin, d - margin)) for d in dims]
                mic = [float(rng.uniform(margin, d - margin)) for d in dims]
                if float(np.linalg.norm(np.subtract(src, mic))) >= settings["min_distance"]:
                    break
            room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption), max_order=max_order)
            room.add_source(src)
            room.add_microphone(mic)
            room.compute_rir()
            h = np.asarray(room.rir[0][0], dtype=np.float32)
            rirs.append(h)
            meta.append({"name": f"shoebox-{len(rirs) - 1:03d}", "room_m": [round(d, 3) for d in dims],
                         "rt60_target_s": round(target, 4), "source_m": [round(v, 3) for v in src],
                         "mic_m": [round(v, 3) for v in mic],
                         "distance_m": round(float(np.linalg.norm(np.subtract(src, mic))), 3)})
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return rirs, meta
