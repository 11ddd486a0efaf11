"""Evaluate a run on a split of a prepared folder, optionally under a prepare-stage corruption."""

from __future__ import annotations

import os

import torch

from roomtone.errors import DataError, ParameterError
from roomtone.files import atomic_write_json, check_output


def make_corruption(name: str, *, sr: int, noise=None, rooms=None, seed: int = 0, snr_db=(0.0, 20.0), mic="phone"):
    """``make_condition(name, split="test", p=1.0)``: the TEST split of the banks, every example transformed.
    ``name``: ``noise``, ``room``, ``mic``, ``all`` or a ``+``-joined combination (``room+mic``)."""
    from roomtone.prepare.conditions import condition_parts, make_condition

    try:
        parts = condition_parts(name)
    except ParameterError as exc:
        raise ParameterError(f"corrupt={name!r}: {exc} (or None for clean)") from None
    if not parts:
        raise ParameterError(f"corrupt={name!r}: pass None for the clean test set")

    return make_condition(name, sr=sr, noise=None if noise is None else str(noise),
                          rooms=None if rooms is None else str(rooms), split="test", snr_db=tuple(snr_db),
                          mic=mic, p=1.0, seed=seed)


def recording_scores(rows, logits: torch.Tensor, y: torch.Tensor):
    """Per-recording mean log-probabilities ``(n_rec, classes)``, labels ``(n_rec,)`` and recording names, or
    None when every row is its own recording. Rows are grouped by ``roomtone.train.data.recording_key``."""
    from roomtone.train.data import recording_key

    keys = [recording_key(r) for r in rows]
    names = list(dict.fromkeys(keys))
    if len(names) == len(keys):
        return None
    from roomtone.train.metrics import combine_windows

    index = {k: i for i, k in enumerate(names)}
    inv = torch.tensor([index[k] for k in keys])
    logp = torch.log_softmax(torch.as_tensor(logits).float(), dim=1)
    rec_y = torch.zeros(len(names), dtype=torch.long).index_copy_(0, inv, torch.as_tensor(y).long())
    return combine_windows(logp, inv, n=len(names)), rec_y, names


def evaluate(run_dir: str | os.PathLike, *, data_dir: str | os.PathLike | None = None, split: str = "test",
             corrupt=None, noise=None, rooms=None, seed: int = 0, out: str | os.PathLike | None = None,
             batch_size: int = 64, checkpoint: str = "best", device: str = "cpu", overwrite: bool = False) -> dict:
    """Metrics of a trained run on ``split`` of ``data_dir`` (default: the folder it was trained on).

    Args:
        corrupt: None (clean), a ``make_condition`` name (``noise``, ``room+mic``, ``all``...; on the test split of
            the banks ``noise``/``rooms``), or a callable ``t(batch (b, time), generator=g)``.
        seed: seed of the corruption generator (the same seed gives the same corrupted test set).
        out: JSON path; the confusion matrix PNG is written next to it (``<stem>_confusion.png``). An
            existing ``out`` is replaced only with ``overwrite=True``.

    Files that cannot be read are left out and listed in ``bad_files`` (``{"path", "error"}``); ``n``
    counts the scored ones.

    Returns:
        ``{"accuracy", "macro_f1", "per_class", "confusion_matrix", "labels", "n", "split", "corrupt"}``; when
        rows are windows of longer recordings (several rows per file) also ``recording_accuracy`` and
        ``recording`` (the same metrics per recording, its windows' log-probabilities averaged), and
        ``bad_files``.
    """
    from roomtone.train.checkpoint import read_run_info
    from roomtone.train.data import load_splits, make_dataset, readable_rows, window_kwargs
    from roomtone.train.loop import predict_dataset
    from roomtone.train.metrics import classification_metrics, plot_confusion
    from roomtone.train.run import load_run

    model, labels, config = load_run(run_dir, checkpoint=checkpoint, device=device)
    if data_dir is None:
        data_dir = read_run_info(run_dir).get("data_dir")
        if data_dir is None:
            raise ParameterError(f"{run_dir}: the run does not record its data folder; pass data_dir=PREPARED_DIR")
    if split not in ("train", "valid", "test"):
        raise ParameterError(f"split={split!r} must be 'train', 'valid' or 'test'")
    splits, meta = load_splits(data_dir, valid_fraction=config.valid_fraction, seed=config.seed,
                               **window_kwargs(config))
    rows = splits[split]
    if not rows:
        raise DataError(f"{data_dir}: no rows in split {split!r}")
    if list(meta["labels"]) != list(labels):
        unknown = sorted({r.label for r in rows} - set(labels))
        if unknown:
            raise DataError(f"{data_dir}: labels {unknown[:10]} were not in the run's labels {labels[:20]}")
    sr = int(model.sr)
    clip = config.clip_seconds if config.clip_seconds is not None else meta.get("clip_seconds")
    if out is not None:
        out = check_output(out, overwrite=overwrite)
    rows, bad_files = readable_rows(rows, labels=labels, sr=sr, clip_seconds=clip)
    if not rows:
        raise DataError(f"{data_dir}: none of the {len(bad_files)} files of split {split!r} can be read; "
                        f"first: {bad_files[0]['path']}: {bad_files[0]['error']}")
    ds = make_dataset(rows, labels=labels, sr=sr, clip_seconds=clip)
    transform, cname = None, None
    if corrupt is not None:
        if callable(corrupt):
            transform, cname = corrupt, getattr(corrupt, "__name__", type(corrupt).__name__)
        else:
            transform, cname = make_corruption(corrupt, sr=sr, noise=noise, rooms=rooms, seed=seed), corrupt
    g = torch.Generator().manual_seed(int(seed))
    logits, y = predict_dataset(model, ds, batch_size=batch_size, transform=transform, generator=g)
    result = classification_metrics(y, logits.argmax(1), labels=labels)
    recordings = recording_scores(rows, logits, y)
    if recordings is not None:
        rec_logp, rec_y, names = recordings
        rec = classification_metrics(rec_y.numpy(), rec_logp.argmax(1).numpy(), labels=labels)
        result["recording_accuracy"] = rec["accuracy"]
        result["recording"] = {**rec, "n_windows": len(rows)}
    result.update({"split": split, "corrupt": cname, "data_dir": str(data_dir), "run_dir": str(run_dir),
                   "bad_files": bad_files})
    if out is not None:
        png = out.with_name(out.stem + "_confusion.png")
        title = f"{split}" + (f" ({cname})" if cname else "") + f": accuracy {result['accuracy']:.3f}"
        plot_confusion(result["confusion_matrix"], labels, png, title=title)
        result["confusion_png"] = str(png)
        atomic_write_json(out, result)
    return result
