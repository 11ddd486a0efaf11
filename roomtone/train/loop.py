"""The one fit loop: ``fit(config, data_dir=..., out_dir=..., resume=False) -> dict``.

Training from scratch, fine-tuning and probing a pre-trained backbone are strategies of this loop
(:mod:`roomtone.train.strategy`): they choose the model, what is optimized, the parameter groups and the
data; every config field (schedule, AMP, mixup, DDP, checkpoints, patience, resume) means the same in
every mode, or is refused where it cannot apply.

Determinism and resume: the example order of every epoch is a pure function of ``(seed, epoch, rank)``
(:func:`roomtone.train.data.epoch_indices`), augmentation generators are derived from ``(seed, epoch,
index)`` (waveform, per item) and ``(seed, step, rank)`` (mixup, SpecAugment, dropout), so a checkpoint
only needs model/optimizer/scheduler states, the position ``(epoch, step_in_epoch)`` and the partial
epoch's accumulators. ``last.pt`` is written every ``checkpoint_every`` steps and at every epoch end;
``resume=True`` continues from it and ends with the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from roomtone.config import TrainConfig
from roomtone.errors import ParameterError
from roomtone.files import atomic_write_text
from roomtone.models.compute import adamw
from roomtone.train.checkpoint import atomic_save, check_run_dir, load_checkpoint, write_run_info
from roomtone.train.compute import ComputeMeter
from roomtone.train.data import batches, epoch_indices, load_splits, window_kwargs
from roomtone.train.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed, wrap_ddp
from roomtone.train.schedule import make_scheduler, steps_in_time


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """63-bit seed of optimizer step ``step`` on ``rank`` (hash: neighbouring steps are unrelated)."""
    h = hashlib.blake2b(f"step:{int(seed)}:{int(step)}:{int(rank)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank if info else 0)
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ParameterError(f"device={name!r} must be 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={name!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return dev


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a run of ``config`` trains under on ``device`` (None: float32). ``amp="auto"``: CUDA
    only, bfloat16 where the device supports it, else float16 (with a GradScaler); ``"on"`` on a CPU: bfloat16."""
    if not (config.amp == "on" or (config.amp == "auto" and device.type == "cuda")):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def _amp(config: TrainConfig, device: torch.device):
    """(autocast context factory, GradScaler or None)."""
    dtype = amp_dtype(config, device)
    if dtype is None:
        return contextlib.nullcontext, None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset, *, batch_size: int = 64, device=None, transform=None,
                    generator: torch.Generator | None = None, collate_fn=None) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (n, num_classes), targets (n,))`` of ``model`` (eval mode) over ``dataset`` in order.

    ``transform(batch (b, time), generator=g)`` (a corruption) is applied to each batch when given.
    ``collate_fn`` returns ``(x, y, lengths)`` (default: padded waveforms).
    """
    from roomtone.prepare.dataset import collate_padded

    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         collate_fn=collate_fn or collate_padded)
    outs, ys = [], []
    for x, y, _lengths in loader:
        if transform is not None:
            x = transform(x, generator=generator)
        outs.append(model(x.to(device)).float().cpu())
        ys.append(y)
    model.train(was)
    return torch.cat(outs).numpy(), torch.cat(ys).numpy()


def _validate(model, dataset, *, batch_size, device, labels, info: DistInfo | None = None, collate_fn=None) -> dict:
    """Validation metrics. Under DDP each rank predicts its share (every world_size-th example) and the
    loss sum and confusion matrix are summed over ranks: the same numbers as one process over all of it."""
    from roomtone.train.metrics import confusion_matrix, metrics_from_confusion

    if info is not None and info.enabled:
        dataset = torch.utils.data.Subset(dataset, range(info.rank, len(dataset), info.world_size))
    if len(dataset):
        logits, y = predict_dataset(model, dataset, batch_size=batch_size, device=device, collate_fn=collate_fn)
        loss_sum = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), reduction="sum"))
        cm = confusion_matrix(y, logits.argmax(1), num_classes=len(labels))
    else:  # a rank with no share of a tiny validation set
        loss_sum, cm = 0.0, np.zeros((len(labels), len(labels)), dtype=np.int64)
    if info is not None:
        total = all_reduce_sum([loss_sum, *cm.reshape(-1).tolist()], info, device)
        loss_sum, cm = total[0], np.rint(np.array(total[1:])).astype(np.int64).reshape(cm.shape)
    m = metrics_from_confusion(cm, labels=labels)
    n = int(cm.sum())
    return {"valid_loss": loss_sum / max(n, 1), "valid_accuracy": m["accuracy"], "valid_macro_f1": m["macro_f1"]}


def _improved(value: float, best: float | None, monitor: str) -> bool:
    """Whether ``value`` becomes the best epoch. Accuracy and F1 ties go to the later epoch: a saturated
    validation score (100 % on a validation split of the training speakers) says nothing, and the later
    weights have trained longer (FSDD by speaker: 90.6 % test for the first 100 % epoch, 94.6 % for the last)."""
    if best is None:
        return True
    return value < best if monitor == "valid_loss" else value >= best


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def fit(config: TrainConfig | str | os.PathLike | None = None, *, data_dir: str | os.PathLike,
        out_dir: str | os.PathLike, resume: bool = False, progress: bool = True, overwrite: bool = False) -> dict:
    """Train a model on a prepared folder; write a run directory; return a summary dict.

    Args:
        config: a TrainConfig, a YAML path, or None for the defaults. With ``resume=True`` the run's own
            ``config.yaml`` is used (the run continues exactly as it started).
        data_dir: prepared folder (``manifest.csv`` + ``prepare.json``).
        out_dir: run directory (``config.yaml``, ``run.json``, ``best.pt``, ``last.pt``, ``metrics.jsonl``).
        resume: continue from ``out_dir/last.pt`` (any interruption, kill -9 included). Without it an
            existing run in ``out_dir`` is an error.
        overwrite: replace the results already in ``out_dir`` (see ``checkpoint.check_run_dir``).
        progress: show a rich progress bar (rank 0 only).

    Returns:
        ``{"run_dir", "epochs_run", "global_step", "best_epoch", "best", "last", "stopped_early", "train_seconds",
        "compute", "total_steps", "precision"}`` (``compute``: :meth:`roomtone.train.compute.ComputeMeter.summary`;
        None for the probe; ``precision``: ``"float32"``, or the autocast dtype, e.g. ``"bfloat16"``).
    With ``config.pretrained`` set, ``config.mode`` (``"probe"`` or ``"finetune"``) picks the strategy
    (:mod:`roomtone.train.strategy`); ``run.json`` then records the backbone, its credit and licence.
    """
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        config = TrainConfig.from_yaml(config)
    out_dir = Path(out_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 checks (and clears) for all
        check_run_dir(out_dir, resume=resume, overwrite=overwrite)
    if resume and (out_dir / "config.yaml").exists():
        config = TrainConfig.from_yaml(out_dir / "config.yaml")
    info = init_distributed(config.device)
    try:
        return _fit(config, data_dir=Path(data_dir), out_dir=out_dir, resume=resume, progress=progress, info=info)
    finally:
        cleanup(info)


def _fit(config: TrainConfig, *, data_dir: Path, out_dir: Path, resume: bool, progress: bool, info: DistInfo) -> dict:
    from roomtone.train.augment import make_spec_augment
    from roomtone.train.strategy import make_plan

    last_path, best_path, metrics_path = out_dir / "last.pt", out_dir / "best.pt", out_dir / "metrics.jsonl"
    if not resume and last_path.exists():
        raise ParameterError(f"{out_dir} already holds a run (last.pt); pass resume=True to continue it, "
                             f"or choose another output folder")
    device = resolve_device(config.device, info)
    splits, meta = load_splits(data_dir, valid_fraction=config.valid_fraction, seed=config.seed,
                               **window_kwargs(config))
    labels = list(meta["labels"])
    plan = make_plan(config, splits, meta, labels=labels, out_dir=out_dir, device=device, info=info)
    model, train_ds, valid_ds = plan.model, plan.train_ds, plan.valid_ds

    def epoch_batches(epoch: int) -> list[list[int]]:
        idx = epoch_indices(len(train_ds), epoch=epoch, seed=config.seed, rank=info.rank,
                            world_size=info.world_size, balanced_rows=plan.balanced_rows)
        return batches(idx, config.batch_size)

    steps_per_epoch = len(epoch_batches(0))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, int(config.max_steps))
    optimizer = adamw(plan.param_groups, lr=config.lr)
    scheduler = make_scheduler(optimizer, config, total_steps, steps_per_epoch)
    autocast, scaler = _amp(config, device)
    ema = None
    if config.ema:  # scratch only (check_config): validated and saved instead of the raw weights
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None, "best_epoch": -1,
             "bad_epochs": 0, "accum": [0.0, 0.0, 0.0], "train_seconds": 0.0, "stopped_early": False,
             "total_steps": total_steps, "timed": [0.0, 0.0, 0, 0]}  # timed: s, validation s, steps, epochs after the first
    if resume and last_path.exists():
        ck = load_checkpoint(last_path, map_location=device)
        state.update(ck["state"])
        if state["total_steps"] != total_steps:  # cut by max_seconds before the interruption
            total_steps = state["total_steps"]
            scheduler = make_scheduler(optimizer, config, total_steps, steps_per_epoch)
        if "net" in ck:  # the trained module's own state (probe: the classifier; not folded; not averaged)
            plan.net.load_state_dict(ck["net"])
        else:
            model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        config.to_yaml(out_dir / "config.yaml")
        extra = {"transfer": plan.transfer} if plan.transfer else {}
        write_run_info(out_dir, labels=labels, model_config=plan.model_config, data_dir=data_dir,
                       splits={k: len(v) for k, v in splits.items()}, world_size=info.world_size, **extra)
        _truncate_metrics(metrics_path, before_epoch=state["epoch"])
    barrier(info)
    net = wrap_ddp(plan.net, info, device)
    meter = ComputeMeter(model, seconds_before=state["train_seconds"]) if plan.on_audio else None
    spec_aug = make_spec_augment(config.specaugment)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    cpu_fork = [device.index or 0] if device.type == "cuda" else []

    def save_last() -> None:
        if info.is_main:
            ck = {"model": plan.saved_state(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else {},
                  "state": dict(state), "labels": labels, "version": 1}
            if plan.net is not model or plan.folds or ema is not None:
                ck["net"] = plan.net.state_dict()  # what training continues from
            if ema is not None:  # the saved model is the average; the raw weights are "net"
                ck["model"], ck["ema"] = ema.module.state_dict(), ema.state_dict()
            atomic_save(ck, last_path)

    last_record: dict = {}
    done = state["global_step"] >= total_steps or state["stopped_early"]
    with _progress(progress and info.is_main) as bar:
        while not done and state["epoch"] < config.epochs:
            epoch = state["epoch"]
            t0 = time.perf_counter()
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            todo = epoch_batches(epoch)[state["step_in_epoch"]:]
            loader = torch.utils.data.DataLoader(train_ds, batch_sampler=todo, collate_fn=plan.collate,
                                                 num_workers=config.num_workers)
            task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=steps_per_epoch,
                                completed=state["step_in_epoch"], stats="")
            plan.start_epoch(epoch)
            for x, y, _lengths in loader:
                s = step_seed(config.seed, state["global_step"], info.rank)
                g = torch.Generator().manual_seed(s)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                lam, perm = 1.0, None
                if config.mixup > 0:
                    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
                    lam = float(rng.beta(config.mixup, config.mixup))
                    perm = torch.randperm(x.shape[0], generator=g).to(device)
                    x = lam * x + (1 - lam) * x[perm]
                spec_fn = (lambda sp, _g=g: spec_aug(sp, _g)) if spec_aug is not None else None
                if meter is not None:
                    meter.start(x)
                with torch.random.fork_rng(devices=cpu_fork):
                    torch.manual_seed(s)  # dropout masks: a function of (seed, step, rank) only
                    with autocast():
                        logits = plan.step(net, x, spec_fn)
                        loss = criterion(logits.float(), y)
                        if perm is not None:
                            loss = lam * loss + (1 - lam) * criterion(logits.float(), y[perm])
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                if meter is not None:
                    meter.stop()
                if ema is not None:
                    ema.update_parameters(model)
                scheduler.step()
                n = y.shape[0]
                state["accum"][0] += float(loss.detach()) * n
                state["accum"][1] += float((logits.detach().argmax(1) == y).sum())
                state["accum"][2] += n
                state["global_step"] += 1
                state["step_in_epoch"] += 1
                a = state["accum"]
                bar.update(task, advance=1, stats=f"loss {a[0] / a[2]:.3f} acc {a[1] / a[2]:.3f}")
                at_end = state["step_in_epoch"] >= steps_per_epoch or state["global_step"] >= total_steps
                if config.checkpoint_every and state["global_step"] % config.checkpoint_every == 0 and not at_end:
                    state["train_seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    save_last()
                if state["global_step"] >= total_steps:
                    break
            bar.remove_task(task)
            loss_sum, correct, count = all_reduce_sum(state["accum"], info, device)
            record = {"epoch": epoch + 1, "step": state["global_step"],
                      "train_loss": loss_sum / max(count, 1), "train_accuracy": correct / max(count, 1),
                      "lr": optimizer.param_groups[0]["lr"]}
            t_valid = time.perf_counter()
            if valid_ds is not None:
                record.update(_validate(plan.net if ema is None else ema.module, valid_ds,
                                        batch_size=2 * config.batch_size, device=device,
                                        labels=labels, info=info, collate_fn=plan.collate))
            t_valid = time.perf_counter() - t_valid
            monitor = config.monitor if config.monitor in record else "train_loss"
            value = record[monitor]
            selectable = state["global_step"] >= config.select_after * total_steps  # the last epoch always is
            if selectable and _improved(value, state["best"], monitor if monitor != "train_loss" else "valid_loss"):
                state["best"], state["best_epoch"], state["bad_epochs"] = value, epoch + 1, 0
                if info.is_main:
                    saved = plan.saved_state() if ema is None else ema.module.state_dict()
                    atomic_save({"model": saved, "epoch": epoch + 1, "metrics": record,
                                 "labels": labels, "version": 1}, best_path)
            elif selectable:
                state["bad_epochs"] += 1
            epoch_s = time.perf_counter() - t0
            state["train_seconds"] += epoch_s
            record["time_s"] = round(state["train_seconds"], 3)
            if epoch > 0 and config.max_seconds is not None and state["global_step"] < total_steps:
                cut = _cut_to_time(config, state, epoch_s=epoch_s, valid_s=t_valid, steps_per_epoch=steps_per_epoch,
                                   info=info, device=device)
                if cut < total_steps:
                    if info.is_main:
                        bar.console.print(f"time budget: {state['train_seconds']:.0f} of {config.max_seconds:.0f} s "
                                          f"spent, {cut - state['global_step']} more steps fit: the run ends at step "
                                          f"{cut} (planned {total_steps}), its schedule re-planned to that")
                    total_steps = state["total_steps"] = cut
                    scheduler = make_scheduler(optimizer, config, total_steps, steps_per_epoch,
                                               done_steps=state["global_step"])
            state["epoch"] += 1
            state["step_in_epoch"] = 0
            state["accum"] = [0.0, 0.0, 0.0]
            if config.patience is not None and state["bad_epochs"] >= config.patience:
                state["stopped_early"] = True
            done = state["global_step"] >= total_steps or state["stopped_early"]
            if info.is_main:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.console.print(_format_record(record))
            save_last()
            last_record = record
    barrier(info)
    compute = None if meter is None else meter.finish(out_dir if info.is_main else None,
                                                      train_seconds=state["train_seconds"],
                                                      console=bar.console if info.is_main else None)
    history = read_metrics(metrics_path) if metrics_path.exists() else []
    best = next((r for r in history if r["epoch"] == state["best_epoch"]), None)
    return {"run_dir": str(out_dir), "epochs_run": state["epoch"], "global_step": state["global_step"],
            "best_epoch": state["best_epoch"], "best": best, "last": history[-1] if history else last_record,
            "stopped_early": state["stopped_early"], "train_seconds": state["train_seconds"], "compute": compute,
            "total_steps": total_steps, "precision": str(amp_dtype(config, device) or torch.float32).removeprefix("torch.")}


def _cut_to_time(config: TrainConfig, state: dict, *, epoch_s: float, valid_s: float, steps_per_epoch: int,
                 info: DistInfo, device: torch.device) -> int:
    """The run's total steps under ``config.max_seconds`` after an epoch (not the first) of ``epoch_s`` seconds,
    ``valid_s`` of them validating, ``state["step_in_epoch"]`` steps: :func:`roomtone.train.schedule.steps_in_time` at
    the slower of two rates, that of all epochs timed so far and that of this one (a run that slows down, as one
    whose later epochs share the machine or run hotter, is planned at its latest pace), averaged over ranks so
    every rank cuts the same."""
    t = state["timed"]
    steps = state["step_in_epoch"]
    t[0], t[1], t[2], t[3] = t[0] + epoch_s, t[1] + valid_s, t[2] + steps, t[3] + 1
    seconds, valid, spent, last_s, last_valid = (
        v / info.world_size for v in all_reduce_sum([t[0], t[1], state["train_seconds"], epoch_s, valid_s],
                                                     info, device))
    step_s = max((seconds - valid) / max(1, t[2]), (last_s - last_valid) / max(1, steps))
    return steps_in_time(config.max_seconds, spent_s=spent, done=state["global_step"], step_s=step_s,
                         valid_s=max(valid / t[3], last_valid), steps_per_epoch=steps_per_epoch,
                         total_steps=state["total_steps"])


def _format_record(r: dict) -> str:
    parts = [f"epoch {r['epoch']}", f"loss {r['train_loss']:.4f}", f"acc {r['train_accuracy']:.4f}"]
    if "valid_accuracy" in r:
        parts += [f"val_loss {r['valid_loss']:.4f}", f"val_acc {r['valid_accuracy']:.4f}",
                  f"val_f1 {r['valid_macro_f1']:.4f}"]
    parts.append(f"{r.get('time_s', 0):.1f}s")
    return "  ".join(parts)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of ``metrics.jsonl`` (one dict per epoch)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_metrics(path: Path, *, before_epoch: int) -> None:
    """Keep only records of epochs already in the checkpoint (a kill between the metrics line and the
    checkpoint would otherwise leave a duplicate when the epoch is redone)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["epoch"] <= before_epoch]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))
