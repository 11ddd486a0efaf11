"""Noise banks: every clip loaded once, resampled once, kept in memory on the batch's device.

A bank comes from a folder or a CSV (see :func:`list_bank_files`); crops are drawn at random offsets
and loop when the clip is shorter than the signal. All clips live in one flat tensor, so a batch of
crops is a single gather, on CPU or GPU alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from roomtone.errors import AudioError, DataError, ParameterError
from roomtone.prepare.manifest import read_csv

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au", ".opus")
_BANK_CACHE: dict[tuple, NoiseBank] = {}


@dataclass(frozen=True)
class BankFile:
    """One file of a bank: its path, the name recorded in drawn parameters, and the CSV row (if any)."""

    path: str
    name: str
    row: dict = field(default_factory=dict, compare=False)


def _rows_from_csv(csv_path: Path, split: str | None) -> list[BankFile]:
    cols, rows = read_csv(csv_path)
    key = "file" if "file" in cols else "path" if "path" in cols else None
    if key is None:
        raise DataError(f"{csv_path}: a bank CSV needs a 'file' or 'path' column; it has {cols}")
    if split is not None and "split" in cols:
        known = sorted({r.get("split") or "" for r in rows})
        rows = [r for r in rows if (r.get("split") or "") == split]
        if not rows:
            raise DataError(f"{csv_path}: no row has split == {split!r}; the splits present are {known}")
    out = []
    for r in rows:
        p = Path(r[key])
        full = p if p.is_absolute() else csv_path.parent / p
        out.append(BankFile(str(full), r[key], dict(r)))
    return out


def _scan(folder: Path) -> list[BankFile]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return [BankFile(str(p), str(p.relative_to(folder))) for p in files]


def list_bank_files(path: str | os.PathLike, *, split: str | None = "train") -> list[BankFile]:
    """The files of a bank, filtered by ``split``.

    ``path`` may be:

    * a CSV with a ``file`` (or ``path``) column and an optional ``split`` column (paths relative to
      the CSV's folder); only rows with ``split == split`` are kept when the column exists;
    * a folder holding ``files.csv`` or ``manifest.csv``: read as above;
    * a folder with a ``train/`` / ``test/`` sub-folder named like ``split``: that sub-folder is scanned;
    * any other folder: every audio file under it, whatever ``split`` says (no split information).

    Raises:
        DataError: the path does not exist, or nothing is left.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: bank folder/CSV does not exist")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{path}: a bank is a folder or a .csv file, not {path.suffix or 'a file without extension'}")
        files = _rows_from_csv(path, split)
    elif (path / "files.csv").exists():
        files = _rows_from_csv(path / "files.csv", split)
    elif (path / "manifest.csv").exists():
        files = _rows_from_csv(path / "manifest.csv", split)
    elif split is not None and (path / split).is_dir():
        files = _scan(path / split)
    else:
        files = _scan(path)
    if not files:
        raise DataError(f"{path}: the bank is empty (no audio files{'' if split is None else f' for split {split!r}'})")
    return files


class NamedBank:
    """Look-up of a bank entry by its recorded name (``self.names``), used to replay drawn parameters."""

    entry_kind = "entry"  # what one entry is called in messages

    def index_of(self, name: str) -> int:
        if not hasattr(self, "_index") or len(self._index) != len(self.names):
            self._index = {n: i for i, n in enumerate(self.names)}
        try:
            return self._index[name]
        except KeyError:
            raise DataError(
                f"{self.entry_kind} {name!r} is not in this bank ({len(self)} entries, e.g. {self.names[:3]})"
            ) from None


class NoiseBank(NamedBank):
    """Clips of noise at one sample rate, concatenated in one flat tensor.

    Attributes:
        sr: sample rate in Hz.
        names: one name per clip (recorded in drawn parameters).
        lengths: ``(n,)`` samples per clip; ``starts``: ``(n,)`` offsets into the flat data.
        skipped: ``[(path, reason)]`` of files that could not be used (unreadable, silent, too short).
        paths: the source file of each clip (None when built from tensors).
    """

    entry_kind = "noise"

    def __init__(self, clips: list[torch.Tensor], names: list[str], *, sr: int, skipped=(),
                 paths: list[str] | None = None):
        if not clips:
            detail = "; ".join(f"{p}: {r}" for p, r in skipped) or "no clips given"
            raise DataError(f"the noise bank is empty ({detail})")
        if len(names) != len(clips):
            raise ParameterError(f"{len(names)} names for {len(clips)} clips")
        self.sr = int(sr)
        self.names = list(names)
        self.skipped = list(skipped)
        self.paths = list(paths) if paths is not None else [None] * len(names)
        self.lengths = torch.tensor([int(c.numel()) for c in clips], dtype=torch.long)
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.data = torch.cat([c.reshape(-1).float() for c in clips])
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __getstate__(self) -> dict:  # DataLoader workers: ship the CPU data only
        state = dict(self.__dict__)
        state["_on"] = {}
        return state

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        secs = float(self.lengths.sum()) / self.sr
        return f"NoiseBank({len(self)} clips, {secs:.1f} s at {self.sr} Hz, {len(self.skipped)} skipped)"

    @classmethod
    def from_files(
        cls,
        files: list,
        *,
        sr: int,
        min_seconds: float = 0.05,
        max_seconds: float | None = None,
        cache: bool = True,
    ) -> NoiseBank:
        """Load ``files`` (paths, :class:`BankFile` or ``ManifestRow``) at ``sr`` Hz, mono.

        Unreadable, silent (below -100 dBFS) or too short (< ``min_seconds``) files are skipped and
        listed in ``bank.skipped``; ``max_seconds`` keeps only the start of long files. Banks are kept
        in a per-process cache keyed by the files and settings (``cache=False`` to bypass it).
        """
        from roomtone.audio import load

        if not isinstance(sr, int) or sr <= 0:
            raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
        entries = []
        for f in files:
            if isinstance(f, BankFile):
                entries.append(f)
            elif hasattr(f, "path") and hasattr(f, "label"):  # ManifestRow (segments honoured)
                entries.append(BankFile(str(f.path), Path(f.path).name, {"start": f.start, "end": f.end}))
            else:
                entries.append(BankFile(str(f), Path(f).name))
        key = (tuple((e.path, str(e.row.get("start")), str(e.row.get("end"))) for e in entries), sr, min_seconds,
               max_seconds)
        if cache and key in _BANK_CACHE:
            return _BANK_CACHE[key]
        clips, names, skipped, paths = [], [], [], []
        for e in entries:
            start, end = e.row.get("start"), e.row.get("end")
            start = float(start) if start not in (None, "") else 0.0
            dur = float(end) - start if end not in (None, "") else None
            if max_seconds is not None:
                dur = max_seconds if dur is None else min(dur, max_seconds)
            try:
                audio, _ = load(e.path, sr=sr, mono=True, offset=start, duration=dur)
            except AudioError as exc:
                skipped.append((e.path, str(exc)))
                continue
            if audio.numel() < max(2, int(min_seconds * sr)):
                skipped.append((e.path, f"too short ({audio.numel()} samples < {min_seconds} s)"))
                continue
            if float(audio.double().pow(2).mean()) <= 1e-10:
                skipped.append((e.path, "silent (below -100 dBFS): cannot be mixed at any SNR"))
                continue
            clips.append(audio)
            names.append(e.name)
            paths.append(e.path)
        bank = cls(clips, names, sr=sr, skipped=skipped, paths=paths)
        if cache:
            _BANK_CACHE[key] = bank
        return bank

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike,
        *,
        sr: int,
        split: str | None = "train",
        max_files: int | None = None,
        min_seconds: float = 0.05,
        max_seconds: float | None = None,
        cache: bool = True,
    ) -> NoiseBank:
        """A bank from a folder or CSV (:func:`list_bank_files`), ``split`` rows only.

        ``max_files`` keeps the first N files (in listing order), e.g. for quick tests.
        """
        files = list_bank_files(path, split=split)
        if max_files is not None:
            if max_files < 1:
                raise ParameterError(f"max_files={max_files!r} must be a positive integer or None")
            files = files[:max_files]
        return cls.from_files(files, sr=sr, min_seconds=min_seconds, max_seconds=max_seconds, cache=cache)

    def on(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(data, starts, lengths)`` on ``device``, copied there once and kept."""
        key = str(torch.device(device))
        if key not in self._on:
            self._on[key] = (self.data.to(device), self.starts.to(device), self.lengths.to(device))
        return self._on[key]

    def draw(self, batch: int, length: int, *, generator: torch.Generator) -> tuple[list[int], list[int]]:
        """Draw ``batch`` (clip index, offset) pairs: clips uniformly, offsets uniformly so that a crop
        of ``length`` fits when the clip is long enough (else any offset, and the crop loops)."""
        u = torch.rand(batch, 2, generator=generator, device=generator.device, dtype=torch.float64).cpu()
        idx = (u[:, 0] * len(self)).long().clamp_max(len(self) - 1)
        lens = self.lengths[idx]
        room = torch.where(lens > length, lens - length + 1, lens)
        off = (u[:, 1] * room).long().clamp_max(room - 1)
        return idx.tolist(), off.tolist()

    def indices_of_files(self, files) -> list[set[int]]:
        """For each of ``files`` (paths), the bank entries read from that same file (an empty set if none)."""
        if not hasattr(self, "_by_file"):
            self._by_file: dict[str, set[int]] = {}
            for i, p in enumerate(self.paths):
                if p is not None:
                    self._by_file.setdefault(os.path.realpath(p), set()).add(i)
        return [self._by_file.get(os.path.realpath(f), set()) if f is not None else set() for f in files]

    def crop(self, index, offset, length: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """Crops ``(batch, length)`` of clips ``index`` starting at ``offset`` (samples), looping short clips."""
        data, starts, lens = self.on(device)
        index = [int(i) for i in torch.as_tensor(index).reshape(-1).tolist()]
        offset = [int(o) for o in torch.as_tensor(offset).reshape(-1).tolist()]
        if len(index) != len(offset):
            raise ParameterError(f"{len(index)} clip indices for {len(offset)} offsets")
        lens_l, starts_l = self.lengths.tolist(), self.starts.tolist()
        rows = []
        for i, o in zip(index, offset, strict=True):
            if not 0 <= i < len(self):
                raise ParameterError(f"clip index {i} is outside the bank (0..{len(self) - 1})")
            n = lens_l[i]
            o %= n
            if o + length <= n:  # the common case: one contiguous slice
                rows.append(data[starts_l[i] + o : starts_l[i] + o + length])
            else:  # loop the clip
                pos = (o + torch.arange(length, device=data.device)) % n
                rows.append(data[starts_l[i] + pos])
        return torch.stack(rows) if rows else data.new_zeros(0, length)
