"""Data for training: the splits of a prepared folder, datasets with an optional in-memory cache, and
the batch order of an epoch (a pure function of seed, epoch, rank and world size, so a run can resume
mid-epoch by skipping the batches it already did)."""

from __future__ import annotations

import os

import torch

from roomtone.errors import DataError
from roomtone.prepare.dataset import AudioDataset
from roomtone.prepare.manifest import ManifestRow


def load_splits(data_dir: str | os.PathLike, *, valid_fraction: float = 0.1, seed: int = 0,
                window: float | None = None, hop: float | None = None
                ) -> tuple[dict[str, list[ManifestRow]], dict]:
    """``({"train": rows, "valid": rows, "test": rows}, prepare_json)`` of a prepared folder.

    Rows with an empty split count as train. Without valid rows, ``valid_fraction`` of the train rows is
    carved out (``roomtone.prepare.splits.assign_splits``, stratified by label): by group when the train rows
    have at least 8 groups, else by file (holding out one of a few speakers would starve training).
    With ``window``/``hop`` (seconds), every row is then cut into sliding windows
    (``roomtone.prepare.segment.segment_rows``; the split is decided per recording, before cutting).
    Unreadable rows are left out of the windows with a warning.
    """
    from roomtone.prepare.dataset import load_prepared

    rows, meta = load_prepared(data_dir)
    splits: dict[str, list[ManifestRow]] = {"train": [], "valid": [], "test": []}
    for r in rows:
        s = r.split or "train"
        if s not in splits:
            raise DataError(f"{data_dir}: unknown split {r.split!r} for {r.path}; allowed: train, valid, test, empty")
        splits[s].append(r if r.split else r.with_split("train"))
    if not splits["train"]:
        raise DataError(f"{data_dir}: no train rows in the manifest (splits: "
                        f"{ {k: len(v) for k, v in splits.items()} })")
    if not splits["valid"] and valid_fraction > 0:
        splits["train"], splits["valid"] = carve_valid(splits["train"], fraction=valid_fraction, seed=seed)
    if window is not None:
        splits = {k: window_rows(v, window=window, hop=hop) for k, v in splits.items()}
    return splits, meta


def window_kwargs(config) -> dict:
    """``load_splits`` window arguments of a ``TrainConfig``: windows of ``clip_seconds`` every ``window_hop``."""
    if config.window_hop is None:
        return {}
    return {"window": float(config.clip_seconds), "hop": float(config.window_hop)}


def window_rows(rows: list[ManifestRow], *, window: float, hop: float | None) -> list[ManifestRow]:
    """Rows cut into sliding windows; unreadable rows are left out with one warning listing them."""
    import warnings

    from roomtone.prepare.segment import segment_rows

    bad: list[str] = []
    out = segment_rows(rows, window=window, hop=hop, on_error=lambda r, why: bad.append(f"{r.path}: {why}"))
    if bad:
        warnings.warn(f"{len(bad)} unreadable row(s) left out of the windows: {bad[:5]}", stacklevel=2)
    return out


def recording_key(row: ManifestRow) -> str:
    """The recording a row (or a window of it) belongs to: its file path."""
    return row.path


def data_sr(splits: dict[str, list[ManifestRow]], meta: dict) -> int:
    """The data's sample rate: ``prepare.json``'s ``sr``, else the most common rate of the train files."""
    from roomtone.prepare.dataset import native_sr

    return int(meta["sr"]) if meta.get("sr") else native_sr(splits["train"])


def carve_valid(rows: list[ManifestRow], *, fraction: float, seed: int = 0
                ) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """Split train rows into (train, valid), by group when there are >= 8 groups, else by file."""
    import warnings

    from roomtone.prepare.splits import assign_splits

    groups = {r.group for r in rows if r.group}
    cleared = [r.with_split("") for r in rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = assign_splits(cleared, valid=fraction, test=0.0, seed=seed, group_split=len(groups) >= 8)
    train = [r for r in out if r.split == "train"]
    valid = [r for r in out if r.split == "valid"]
    if not train or not valid:
        raise DataError(f"could not carve a validation split of {fraction} from {len(rows)} train rows; "
                        f"add valid rows to the manifest or set valid_fraction")
    return train, valid


class CachedAudioDataset(AudioDataset):
    """AudioDataset that keeps each decoded, cropped clip in memory after its first load (per process)."""

    def load(self, index: int) -> torch.Tensor:
        store = self.__dict__.setdefault("_store", {})
        hit = store.get(index)
        if hit is None:
            hit = store[index] = super().load(index)
        return hit.clone()


def make_dataset(rows, *, labels, sr, clip_seconds, transform=None, seed=0, cache=False) -> AudioDataset:
    """``roomtone.prepare.dataset.AudioDataset`` over ``rows``; with ``cache`` the decoded, cropped clips
    are kept in memory (the transform still runs on every access, with its per-item generator)."""
    cls = CachedAudioDataset if cache else AudioDataset
    return cls(rows, labels=labels, sr=sr, clip_seconds=clip_seconds, transform=transform, seed=seed)


def readable_rows(rows, *, labels, sr, clip_seconds) -> tuple[list, list[dict]]:
    """``(good_rows, bad)``: the rows whose audio loads, and ``{"path", "error"}`` for each that does not
    (a batch job scores the readable files and lists the others instead of stopping at the first)."""
    ds = make_dataset(rows, labels=labels, sr=sr, clip_seconds=clip_seconds)
    good, bad = [], []
    for i, row in enumerate(rows):
        try:
            ds[i]
        except Exception as exc:  # noqa: BLE001 - any decoder failure makes this one file bad, not the job
            bad.append({"path": str(row.path), "error": f"{type(exc).__name__}: {exc}"})
        else:
            good.append(row)
    return good, bad


def train_valid_datasets(config, splits: dict, *, labels, sr: int, clip_seconds):
    """``(train, valid or None, balanced_rows or None)`` for a ``TrainConfig``: the train set augmented
    with ``config.augment`` on the waveform (train banks), the valid set clean."""
    from roomtone.train.augment import make_waveform_augment

    wave_aug = make_waveform_augment(config.augment, sr=sr, seed=config.seed)
    train = make_dataset(splits["train"], labels=labels, sr=sr, clip_seconds=clip_seconds, transform=wave_aug,
                         seed=config.seed, cache=config.cache_audio)
    valid = make_dataset(splits["valid"], labels=labels, sr=sr, clip_seconds=clip_seconds,
                         cache=config.cache_audio) if splits["valid"] else None
    return train, valid, (splits["train"] if config.balanced else None)


def epoch_indices(n: int, *, epoch: int, seed: int, rank: int = 0, world_size: int = 1,
                  balanced_rows: list[ManifestRow] | None = None) -> list[int]:
    """Example order of one epoch for one rank (deterministic in ``seed``, ``epoch``).

    Shuffled with ``torch.utils.data.DistributedSampler`` semantics (padded so every rank gets the same
    count); with ``balanced_rows`` a class-balanced draw (``class_balanced_sampler``) is sharded instead.
    """
    if balanced_rows is not None:
        from roomtone.prepare.dataset import class_balanced_sampler

        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = list(iter(class_balanced_sampler(balanced_rows, generator=g)))
        per = -(-len(order) // world_size)
        order = (order + order[: per * world_size - len(order)])
        return order[rank::world_size]
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=False)
    sampler.set_epoch(epoch)
    return list(iter(sampler))


def batches(indices: list[int], batch_size: int, *, drop_last: bool = True) -> list[list[int]]:
    """Chunks of ``batch_size`` (the last partial one dropped when ``drop_last`` and there is a full one)."""
    out = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    if drop_last and len(out) > 1 and len(out[-1]) < batch_size:
        out = out[:-1]
    return out
