"""PyTorch datasets over a manifest: raw audio (on-the-fly, for augmentation) or cached features.

Determinism with DataLoader workers: the random generator handed to ``transform`` is derived from
``(seed, epoch, index)`` only — never from the worker id or the global RNG — so an item is the same
whatever ``num_workers`` is and whichever worker loads it. Call ``dataset.set_epoch(epoch)`` before
each epoch (with ``persistent_workers=False``, the default, workers copy the dataset at the start of
every epoch and see the new value).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.manifest import ManifestRow, labels_of, read_manifest
from roomtone.prepare.transforms.base import Transform


def item_seed(seed: int, index: int, epoch: int = 0) -> int:
    """A 63-bit seed for item ``index`` at ``epoch`` (a hash, so neighbouring items are unrelated)."""
    h = hashlib.blake2b(f"{int(seed)}:{int(epoch)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def item_generator(seed: int, index: int, epoch: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`item_seed`."""
    return torch.Generator().manual_seed(item_seed(seed, index, epoch))


def _label_indices(rows: list[ManifestRow], labels: list[str]) -> list[int]:
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({r.label for r in rows} - set(index))
    if unknown:
        raise DataError(f"label(s) {unknown[:10]} are not in labels={list(labels)[:20]}")
    return [index[r.label] for r in rows]


class AudioDataset(Dataset):
    """Waveforms from a manifest: item ``i`` is ``(waveform float32 (time,), label_index int)``.

    Args:
        rows: manifest rows (segments via ``start``/``end`` seconds are honoured).
        labels: class order (``prepare.json["labels"]``); a row with another label is an error.
        sr: sample rate in Hz; files are resampled on load (soxr). None keeps each file's rate.
        clip_seconds: fixed length: energy-centred crop when longer, zero pad at the end when shorter.
            None gives variable lengths (batch them with :func:`collate_padded`).
        transform: ``transform(waveform, generator=g) -> waveform`` applied after cropping, e.g. a
            ``roomtone.prepare.transforms`` augmentation (which also gets ``sources=[row.path]``);
            ``g`` comes from :func:`item_generator`.
        seed: base seed of the per-item generators.
        channel: pick this channel of multi-channel files instead of averaging them.
    """

    def __init__(self, rows: list[ManifestRow], *, labels: list[str], sr: int | None,
                 clip_seconds: float | None = None, transform=None, seed: int = 0,
                 channel: int | None = None) -> None:
        if sr is not None and (not isinstance(sr, (int, np.integer)) or sr <= 0):
            raise ParameterError(f"sr={sr!r} must be a positive integer (Hz) or None")
        if clip_seconds is not None and clip_seconds <= 0:
            raise ParameterError(f"clip_seconds={clip_seconds!r} must be > 0 or None")
        if clip_seconds is not None and sr is None:
            raise ParameterError("clip_seconds needs a fixed sr (files may differ in rate)")
        self.rows = list(rows)
        self.labels = list(labels)
        self.targets = _label_indices(self.rows, self.labels)
        self.sr = None if sr is None else int(sr)
        self.clip_seconds = clip_seconds
        self.transform = transform
        self.seed = int(seed)
        self.channel = channel
        self.epoch = 0

    @classmethod
    def from_dir(cls, prepared_dir: str | os.PathLike, *, split: str | None = "train", transform=None,
                 sr: int | None = None, clip_seconds: float | None = None, seed: int = 0) -> AudioDataset:
        """The ``split`` rows of a prepared folder (``manifest.csv`` + ``prepare.json``); ``sr`` and
        ``clip_seconds`` default to the prepared values. ``split=None`` takes every row."""
        rows, meta = load_prepared(prepared_dir)
        if split is not None:
            rows = [r for r in rows if r.split == split]
            if not rows:
                raise DataError(f"{prepared_dir}: no rows in split {split!r}")
        return cls(rows, labels=meta["labels"], sr=sr if sr is not None else meta.get("sr"),
                   clip_seconds=clip_seconds if clip_seconds is not None else meta.get("clip_seconds"),
                   transform=transform, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch that seeds the per-item generators (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> torch.Tensor:
        """The waveform of row ``index`` before ``transform``: ``(time,)`` float32 at ``self.sr``."""
        from roomtone.audio import load
        from roomtone.prepare.segment import fix_length

        r = self.rows[index]
        offset = r.start or 0.0
        duration = None if r.end is None else max(r.end - offset, 1e-6)
        audio, file_sr = load(r.path, sr=self.sr, offset=offset, duration=duration, channel=self.channel)
        if self.clip_seconds is not None:
            audio = fix_length(audio, length=max(1, int(round(self.clip_seconds * file_sr))))
        return audio

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._transformed(self.load(index), index)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch of items (the DataLoader's fetch): with a ``Transform`` and clips of one length, each item's
        parameters are drawn with its own :func:`item_generator`, as :meth:`__getitem__` draws them, and the
        transform runs once on the whole batch (one FFT pass instead of one per clip; equal to the items one by
        one up to float summation order). Otherwise item by item."""
        if not isinstance(self.transform, Transform) or len(indices) < 2:
            return [self[i] for i in indices]
        clips = [self.load(i) for i in indices]
        if len({c.shape[-1] for c in clips}) > 1 or clips[0].dim() != 1:
            return [self._transformed(c, i) for c, i in zip(clips, indices, strict=True)]
        x = torch.stack(clips)
        params = []
        for clip, i in zip(x, indices, strict=True):
            params += self.transform.draw(clip.unsqueeze(0), generator=item_generator(self.seed, i, self.epoch),
                                          sources=[self.rows[i].path])
        out = self.transform.replay(x, params).to(torch.float32)
        return [(out[k], self.targets[i]) for k, i in enumerate(indices)]

    def _transformed(self, audio: torch.Tensor, index: int) -> tuple[torch.Tensor, int]:
        """Item ``index`` from its loaded ``audio``: the transform with the item's generator."""
        if self.transform is not None:
            g = item_generator(self.seed, index, self.epoch)
            if isinstance(self.transform, Transform):  # its own recording is never babble for itself
                audio = self.transform(audio, generator=g, sources=[self.rows[index].path])
            else:
                audio = self.transform(audio, generator=g)
            if isinstance(audio, np.ndarray):
                audio = torch.from_numpy(audio)
            audio = audio.to(torch.float32)
        return audio, self.targets[index]


class FeatureDataset(Dataset):
    """Cached features: item ``i`` is ``(features float32 (..., freq, frames), label_index int)``.

    The arrays are views into the memory-mapped ``.npy`` shards written by
    :func:`roomtone.features.cache.cache_features` (copied out per item); ``cache_dir`` is the folder
    holding that run's ``index.json``. A row missing from the cache is an error naming the command
    that fills it.
    """

    def __init__(self, rows: list[ManifestRow], *, labels: list[str], cache_dir: str | os.PathLike) -> None:
        from roomtone.features.cache import read_cache_index, row_key

        self.rows = list(rows)
        self.labels = list(labels)
        self.targets = _label_indices(self.rows, self.labels)
        self.cache_dir = Path(cache_dir)
        index = read_cache_index(self.cache_dir)
        self.entries = []
        missing = []
        for r in self.rows:
            entry = index["entries"].get(row_key(r))
            if entry is None:
                missing.append(r.path)
            else:
                self.entries.append(entry)
        if missing:
            raise DataError(f"{cache_dir}: {len(missing)} row(s) not in the feature cache, e.g. {missing[0]}; "
                            f"run `roomtone features cache` on this manifest")
        self.config = index.get("config", {})
        self._mmaps: dict = {}  # opened lazily, so each DataLoader worker maps the shards itself

    @classmethod
    def from_dir(cls, prepared_dir: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                 split: str | None = "train") -> FeatureDataset:
        """The ``split`` rows of a prepared folder, read from ``cache_dir`` (default: the only cache
        under ``PREPARED_DIR/features``; with several, pass the one ``roomtone features cache`` printed)."""
        rows, meta = load_prepared(prepared_dir)
        if cache_dir is None:
            found = sorted(p.parent for p in (Path(prepared_dir) / "features").glob("*/index.json"))
            if len(found) != 1:
                raise DataError(f"{prepared_dir}: {len(found)} feature caches found "
                                f"({[p.name for p in found]}); pass cache_dir=")
            cache_dir = found[0]
        if split is not None:
            rows = [r for r in rows if r.split == split]
        return cls(rows, labels=meta["labels"], cache_dir=cache_dir)

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):
        return {**self.__dict__, "_mmaps": {}}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from roomtone.features.cache import entry_array

        verified = self.__dict__.setdefault("_verified", set())  # each entry's CRC is checked on its first read
        arr = entry_array(self.cache_dir, self.entries[index], mmaps=self._mmaps, verify=index not in verified)
        verified.add(index)
        return torch.from_numpy(np.array(arr, dtype=np.float32)), self.targets[index]


def class_balanced_sampler(rows: list[ManifestRow], *, generator: torch.Generator,
                           num_samples: int | None = None, replacement: bool = True):
    """A ``WeightedRandomSampler`` that draws every class equally often (weight ``1 / count(label)``).

    ``num_samples`` defaults to ``len(rows)`` (one epoch); ``generator`` makes it reproducible.
    """
    from torch.utils.data import WeightedRandomSampler

    if not rows:
        raise DataError("class_balanced_sampler: no rows")
    if not isinstance(generator, torch.Generator):
        raise ParameterError(f"generator={generator!r} must be a torch.Generator")
    counts = Counter(r.label for r in rows)
    weights = torch.tensor([1.0 / counts[r.label] for r in rows], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=num_samples or len(rows), replacement=replacement,
                                 generator=generator)


def collate_padded(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack variable-length items, zero-padding the last axis at the end.

    Args:
        batch: ``[(x_i (..., time_i), label_i), ...]`` (waveforms ``(time,)`` or features ``(freq, frames)``).

    Returns:
        ``(x, labels, lengths)``: ``x`` of shape ``(batch, ..., max_time)``, ``labels`` LongTensor
        ``(batch,)``, ``lengths`` LongTensor ``(batch,)`` = valid samples (frames) per item, the
        ``lengths`` argument of the feature layers.
    """
    if not batch:
        raise DataError("collate_padded: empty batch")
    xs = [torch.as_tensor(x) for x, _ in batch]
    lead = {tuple(x.shape[:-1]) for x in xs}
    if len(lead) > 1:
        raise DataError(f"collate_padded: items differ in leading shape {sorted(lead)}; only the last axis may vary")
    lengths = torch.tensor([x.shape[-1] for x in xs], dtype=torch.long)
    t = int(lengths.max())
    out = xs[0].new_zeros((len(xs), *xs[0].shape[:-1], t))
    for i, x in enumerate(xs):
        out[i, ..., : x.shape[-1]] = x
    labels = torch.tensor([int(y) for _, y in batch], dtype=torch.long)
    return out, labels, lengths


def load_prepared(prepared_dir: str | os.PathLike) -> tuple[list[ManifestRow], dict]:
    """``(rows, prepare_json)`` of a prepared folder. Without ``prepare.json`` the labels come from
    the manifest and ``sr``/``clip_seconds`` are None."""
    d = Path(prepared_dir)
    rows = read_manifest(d)
    meta_path = (d if d.is_dir() else d.parent) / "prepare.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("labels", labels_of(rows))
    meta.setdefault("sr", None)
    meta.setdefault("clip_seconds", None)
    return rows, meta


def native_sr(rows: list[ManifestRow]) -> int:
    """The most common sample rate of the rows' files (looked at on up to 50 files)."""
    from collections import Counter

    from roomtone.audio import info
    from roomtone.errors import DataError, RoomtoneError

    rates = Counter()
    for r in rows[:: max(1, len(rows) // 50)]:
        try:
            rates[info(r.path).sr] += 1
        except RoomtoneError:
            continue
    if not rates:
        raise DataError("no readable audio file among the manifest rows")
    return int(rates.most_common(1)[0][0])
