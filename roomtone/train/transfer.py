"""Transfer learning from a pre-trained backbone: ``roomtone train --pretrained NAME --mode probe|finetune``.

``fit_transfer`` writes an ordinary run directory (``config.yaml``, ``run.json``, ``best.pt``,
``last.pt``, ``metrics.jsonl``): the saved model is a registry model (backbone + head), so
``load_run``, ``evaluate``, ``predict`` and ``export`` work on it unchanged.

* ``probe``: the backbone is frozen; embeddings of the train/valid clips are computed once (cached
  in ``RUN_DIR/embeddings/``) and a linear head (or ``model_kwargs={"head": "mlp"}``) is trained on
  standardized embeddings; the standardization is folded into the head's first layer afterwards.
* ``finetune``: the whole model trains, the backbone at ``lr * backbone_lr_scale``; with
  ``unfreeze_schedule=[e0, e1, ...]`` the backbone starts frozen and its k-th stage from the top
  (``model.backbone_stages()``) becomes trainable at epoch ``e_k`` (stages without an entry stay
  frozen). Frozen stages keep their BatchNorm statistics (eval mode).

The backbone's sample rate and front end are applied automatically: clips are resampled on load to
``model.sr``. A warning is issued (and recorded in ``run.json``) when the audio has less bandwidth
than the backbone's front end expects, e.g. 8 kHz speech into a 44.1 kHz model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from roomtone.errors import ParameterError

HEAD_KEYS = ("head", "hidden")


def _summary(out_dir: Path, state: dict, history: list[dict]) -> dict:
    best = next((r for r in history if r["epoch"] == state["best_epoch"]), None)
    return {"run_dir": str(out_dir), "epochs_run": state["epoch"], "global_step": state["global_step"],
            "best_epoch": state["best_epoch"], "best": best, "last": history[-1] if history else {},
            "stopped_early": state["stopped_early"], "train_seconds": state["train_seconds"]}


def source_bandwidth(rows, meta: dict, *, max_files: int = 200) -> float | None:
    """Nyquist frequency (Hz) of the user's audio: ``prepare.json``'s ``sr``, else the lowest file rate seen."""
    if meta.get("sr"):
        return float(meta["sr"]) / 2.0
    from roomtone.audio import info

    rates = []
    for r in rows[:max_files]:
        try:
            rates.append(info(r.path).sr)
        except Exception:  # an unreadable file is reported by the dataset later
            continue
    return min(rates) / 2.0 if rates else None


def check_bandwidth(model, rows, meta: dict, *, name: str) -> str | None:
    """Warn when the audio's bandwidth is below the backbone front end's ``fmax``; returns the message (or None)."""
    nyquist = source_bandwidth(rows, meta)
    fmax = float(getattr(model.frontend, "fmax", None) or model.sr / 2)
    if nyquist is None or nyquist >= 0.9 * fmax:
        return None
    msg = (f"the audio has {nyquist:.0f} Hz of bandwidth (sample rate {2 * nyquist:.0f} Hz) but {name} expects "
           f"content up to {fmax:.0f} Hz (it runs at {model.sr} Hz): clips are resampled, the mel bands above "
           f"{nyquist:.0f} Hz stay empty, and transfer may suffer. Prefer recordings at >= {2 * fmax:.0f} Hz, or a "
           f"backbone trained on band-limited audio.")
    warnings.warn(msg, UserWarning, stacklevel=3)
    return msg


def _embed(model, dataset, *, batch_size: int, device, desc: str, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from roomtone.prepare.dataset import collate_padded
    from roomtone.train.loop import _progress

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_padded)
    embs, ys = [], []
    model.eval()
    with _progress(progress) as bar, torch.no_grad():
        task = bar.add_task(desc, total=len(loader), stats="")
        for x, y, _ in loader:
            embs.append(model.forward_head(model.forward_features(x.to(device)), pre_logits=True).float().cpu())
            ys.append(y)
            bar.update(task, advance=1)
    return torch.cat(embs), torch.cat(ys)


def _rows_key(name: str, rows, sr: int, clip) -> str:
    h = hashlib.sha256(f"{name}|{sr}|{clip}".encode())
    for r in rows:
        h.update(f"{r.path}|{r.label}|{r.start}|{r.end}\n".encode())
    return h.hexdigest()[:16]


def cached_embeddings(model, rows, *, labels, name: str, sr: int, clip, cache_dir: Path, split: str,
                      batch_size: int, device, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings ``(n, D)`` and targets ``(n,)`` of ``rows``, computed once and kept in ``cache_dir``."""
    from safetensors.torch import load_file, save_file

    from roomtone.train.data import make_dataset

    key = _rows_key(name, rows, sr, clip)
    path = cache_dir / f"{split}-{key}.safetensors"
    if path.exists():
        d = load_file(str(path))
        return d["embeddings"], d["targets"]
    ds = make_dataset(rows, labels=labels, sr=sr, clip_seconds=clip)
    emb, y = _embed(model, ds, batch_size=batch_size, device=device, desc=f"embed {split}", progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    save_file({"embeddings": emb.contiguous(), "targets": y.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return emb, y


def _first_linear(head: nn.Module) -> nn.Linear:
    if isinstance(head, nn.Linear):
        return head
    return next(m for m in head.modules() if isinstance(m, nn.Linear))


def fold_standardization(head: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make ``head(x)`` equal the trained ``head((x - mean) / std)`` by rescaling its first Linear in place."""
    lin = _first_linear(head)
    with torch.no_grad():
        w = lin.weight / std
        lin.bias -= (w * mean).sum(dim=1)
        lin.weight.copy_(w)


def _head_kwargs(config) -> dict:
    kw = dict(config.model_kwargs or {})
    unknown = sorted(set(kw) - set(HEAD_KEYS))
    if unknown:
        raise ParameterError(f"model_kwargs {unknown} are not used with a pre-trained backbone; allowed: {list(HEAD_KEYS)}")
    return kw


def _epoch_record(epoch, step, loss_sum, correct, count, lr, valid) -> dict:
    rec = {"epoch": epoch, "step": step, "train_loss": loss_sum / max(count, 1),
           "train_accuracy": correct / max(count, 1), "lr": lr}
    rec.update(valid or {})
    return rec


def _valid_metrics(logits: torch.Tensor, y: torch.Tensor, labels) -> dict:
    from roomtone.train.metrics import classification_metrics

    loss = float(nn.functional.cross_entropy(logits, y))
    m = classification_metrics(y.numpy(), logits.argmax(1).numpy(), labels=labels)
    return {"valid_loss": loss, "valid_accuracy": m["accuracy"], "valid_macro_f1": m["macro_f1"]}


def _improved(value, best, monitor) -> bool:
    if best is None:
        return True
    return value < best if monitor in ("valid_loss", "train_loss") else value > best


def fit_transfer(config, *, data_dir: str | os.PathLike, out_dir: str | os.PathLike, resume: bool = False,
                 progress: bool = True) -> dict:
    """Train a head (``probe``) or the whole network (``finetune``) on top of ``config.pretrained``.

    Returns the same summary as :func:`roomtone.train.fit`:
    ``{"run_dir", "epochs_run", "global_step", "best_epoch", "best", "last", "stopped_early", "train_seconds"}``.
    """
    from roomtone.config import TrainConfig
    from roomtone.models import create_model
    from roomtone.models.pretrained import CATALOG, load_backbone
    from roomtone.train.checkpoint import write_run_info
    from roomtone.train.data import load_splits
    from roomtone.train.loop import resolve_device

    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_yaml(config) if config is not None else TrainConfig()
    name = config.pretrained
    if name not in CATALOG:
        raise ParameterError(f"pretrained={name!r} is not a known backbone; allowed: {sorted(CATALOG)}")
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    if not resume and (out_dir / "last.pt").exists():
        raise ParameterError(f"{out_dir} already holds a run (last.pt); pass resume=True (--resume) to continue it, "
                             f"or choose another output folder")
    splits, meta = load_splits(data_dir, valid_fraction=config.valid_fraction, seed=config.seed)
    labels = list(meta["labels"])
    entry = CATALOG[name]
    model_config = {"name": entry.model, "num_classes": len(labels), **_head_kwargs(config)}
    mc = dict(model_config)
    model = create_model(mc.pop("name"), num_classes=mc.pop("num_classes"), **mc)
    load_backbone(name, model)
    model.model_config = model_config
    device = resolve_device(config.device)
    model.to(device)
    bandwidth = check_bandwidth(model, splits["train"], meta, name=name)
    clip = config.clip_seconds if config.clip_seconds is not None else meta.get("clip_seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(out_dir / "config.yaml")
    write_run_info(out_dir, labels=labels, model_config=model_config, data_dir=data_dir,
                   splits={k: len(v) for k, v in splits.items()}, world_size=1,
                   transfer={"pretrained": name, "mode": config.mode, "sr": int(model.sr),
                             "bandwidth_warning": bandwidth, "credit": entry.credit, "licence": entry.licence})
    run = _probe if config.mode == "probe" else _finetune
    return run(config, model, splits=splits, labels=labels, clip=clip, out_dir=out_dir, resume=resume,
               device=device, progress=progress, name=name)


def _probe(config, model, *, splits, labels, clip, out_dir, resume, device, progress, name) -> dict:
    from roomtone.train.checkpoint import atomic_save, load_checkpoint
    from roomtone.train.loop import read_metrics

    t_start = time.perf_counter()
    sr = int(model.sr)
    cache = out_dir / "embeddings"
    common = dict(labels=labels, name=name, sr=sr, clip=clip, cache_dir=cache, batch_size=2 * config.batch_size,
                  device=device, progress=progress)
    xtr, ytr = cached_embeddings(model, splits["train"], split="train", **common)
    xva, yva = cached_embeddings(model, splits["valid"], split="valid", **common) if splits["valid"] else (None, None)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    ztr = (xtr - mean) / std
    zva = (xva - mean) / std if xva is not None else None
    head = model.classifier()
    head.to("cpu")
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    crit = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    metrics_path, last_path, best_path = out_dir / "metrics.jsonl", out_dir / "last.pt", out_dir / "best.pt"
    state = {"epoch": 0, "global_step": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "train_seconds": 0.0,
             "stopped_early": False}
    best_head = None
    if resume and last_path.exists():
        ck = load_checkpoint(last_path)
        head.load_state_dict(ck["head_std"])
        opt.load_state_dict(ck["optimizer"])
        state.update(ck["state"])
        best_head = ck.get("best_head_std")
    elif metrics_path.exists():
        metrics_path.unlink()
    monitor = config.monitor if zva is not None else "train_loss"
    n = ztr.shape[0]
    while state["epoch"] < config.epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g)
        head.train()
        loss_sum = correct = count = 0.0
        for i in range(0, n, config.batch_size):
            idx = order[i:i + config.batch_size]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed * 7919 + state["global_step"])  # MLP dropout: a function of (seed, step)
                logits = head(ztr[idx])
                loss = crit(logits, ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            state["global_step"] += 1
            loss_sum += float(loss.detach()) * len(idx)
            correct += float((logits.argmax(1) == ytr[idx]).sum())
            count += len(idx)
            if config.max_steps and state["global_step"] >= config.max_steps:
                break
        head.eval()
        valid = None
        if zva is not None:
            with torch.no_grad():
                valid = _valid_metrics(head(zva), yva, labels)
        rec = _epoch_record(epoch + 1, state["global_step"], loss_sum, correct, count, config.lr, valid)
        value = rec[monitor]
        if _improved(value, state["best"], monitor):
            state["best"], state["best_epoch"], state["bad_epochs"] = value, epoch + 1, 0
            best_head = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        if config.patience is not None and state["bad_epochs"] >= config.patience:
            state["stopped_early"] = True
        if config.max_steps and state["global_step"] >= config.max_steps:
            state["stopped_early"] = True
        rec["time_s"] = round(time.perf_counter() - t_start, 3)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        atomic_save({"model": _folded_state(model, head, head.state_dict(), mean, std), "head_std": head.state_dict(),
                     "best_head_std": best_head, "optimizer": opt.state_dict(), "state": dict(state),
                     "labels": labels, "version": 1}, last_path)
    state["train_seconds"] = time.perf_counter() - t_start
    history = read_metrics(metrics_path) if metrics_path.exists() else []
    best_rec = next((r for r in history if r["epoch"] == state["best_epoch"]), None)
    atomic_save({"model": _folded_state(model, head, best_head, mean, std), "epoch": state["best_epoch"],
                 "metrics": best_rec, "labels": labels, "version": 1}, best_path)
    model.to("cpu")
    return _summary(out_dir, state, history)


def _folded_state(model, head, head_state, mean, std) -> dict:
    """The full model's state dict with ``head_state`` (trained on standardized embeddings) folded in."""
    import copy

    h = copy.deepcopy(head).cpu()
    h.load_state_dict(head_state)
    fold_standardization(h, mean, std)
    prefix = next(n for n, m in model.named_modules() if m is head)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(prefix + ".")}
    sd.update({f"{prefix}.{k}": v for k, v in h.state_dict().items()})
    return sd


def _set_trainable(model, frozen: list[nn.Module]) -> None:
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    for m in frozen:
        m.eval()  # keep BatchNorm statistics of frozen stages
        for p in m.parameters():
            p.requires_grad_(False)


def _frozen_at(model, schedule, epoch: int) -> list[nn.Module]:
    if not schedule:
        return []
    stages = model.backbone_stages()
    return [s for k, s in enumerate(stages) if k >= len(schedule) or epoch < schedule[k]]


def _finetune(config, model, *, splits, labels, clip, out_dir, resume, device, progress, name) -> dict:
    from roomtone.prepare.dataset import collate_padded
    from roomtone.train.augment import make_spec_augment
    from roomtone.train.checkpoint import atomic_save, load_checkpoint
    from roomtone.train.data import batches, epoch_indices, train_valid_datasets
    from roomtone.train.loop import _progress, predict_dataset, read_metrics

    sr = int(model.sr)
    schedule = config.unfreeze_schedule
    if schedule is not None and (any(not isinstance(e, int) or e < 0 for e in schedule) or list(schedule) != sorted(schedule)):
        raise ParameterError(f"unfreeze_schedule={schedule!r} must be non-decreasing epochs >= 0 (stage k from the top "
                             f"unfreezes at epoch schedule[k])")
    train_ds, valid_ds, balanced_rows = train_valid_datasets(config, splits, labels=labels, sr=sr, clip_seconds=clip)
    head_params = list(model.classifier().parameters())
    head_ids = {id(p) for p in head_params}
    backbone_params = [p for p in model.parameters() if id(p) not in head_ids]
    opt = torch.optim.AdamW([{"params": head_params, "lr": config.lr},
                             {"params": backbone_params, "lr": config.lr * config.backbone_lr_scale}],
                            weight_decay=config.weight_decay)
    steps_per_epoch = len(batches(epoch_indices(len(train_ds), epoch=0, seed=config.seed,
                                                balanced_rows=balanced_rows), config.batch_size))
    total = steps_per_epoch * config.epochs
    if config.max_steps:
        total = min(total, int(config.max_steps))
    warm = max(1, steps_per_epoch)

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    spec_aug = make_spec_augment(config.specaugment)
    crit = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    metrics_path, last_path, best_path = out_dir / "metrics.jsonl", out_dir / "last.pt", out_dir / "best.pt"
    state = {"epoch": 0, "global_step": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "train_seconds": 0.0,
             "stopped_early": False}
    if resume and last_path.exists():
        ck = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        state.update(ck["state"])
    elif metrics_path.exists():
        metrics_path.unlink()
    monitor = config.monitor if valid_ds is not None else "train_loss"
    with _progress(progress) as bar:
        while state["epoch"] < config.epochs and not state["stopped_early"] and state["global_step"] < total:
            epoch = state["epoch"]
            t0 = time.perf_counter()
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            _set_trainable(model, _frozen_at(model, schedule, epoch))
            todo = batches(epoch_indices(len(train_ds), epoch=epoch, seed=config.seed, balanced_rows=balanced_rows),
                           config.batch_size)
            loader = torch.utils.data.DataLoader(train_ds, batch_sampler=todo, collate_fn=collate_padded,
                                                 num_workers=config.num_workers)
            task = bar.add_task(f"finetune {epoch + 1}/{config.epochs}", total=len(todo), stats="")
            loss_sum = correct = count = 0.0
            for x, y, _ in loader:
                seed = config.seed * 1_000_003 + state["global_step"]
                g = torch.Generator().manual_seed(seed)
                x, y = x.to(device), y.to(device)
                spec_fn = (lambda sp, _g=g: spec_aug(sp, _g)) if spec_aug is not None else None
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)  # dropout masks: a function of (seed, step)
                    logits = model(x, spec_transform=spec_fn)
                    loss = crit(logits, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                sched.step()
                state["global_step"] += 1
                loss_sum += float(loss.detach()) * len(y)
                correct += float((logits.argmax(1) == y).sum())
                count += len(y)
                bar.update(task, advance=1, stats=f"loss {loss_sum / count:.3f} acc {correct / count:.3f}")
                if state["global_step"] >= total:
                    break
            bar.remove_task(task)
            valid = None
            if valid_ds is not None:
                logits_v, y_v = predict_dataset(model, valid_ds, batch_size=2 * config.batch_size, device=device)
                valid = _valid_metrics(torch.from_numpy(logits_v), torch.from_numpy(y_v), labels)
            rec = _epoch_record(epoch + 1, state["global_step"], loss_sum, correct, count, opt.param_groups[0]["lr"], valid)
            if _improved(rec[monitor], state["best"], monitor):
                state["best"], state["best_epoch"], state["bad_epochs"] = rec[monitor], epoch + 1, 0
                atomic_save({"model": model.state_dict(), "epoch": epoch + 1, "metrics": rec, "labels": labels,
                             "version": 1}, best_path)
            else:
                state["bad_epochs"] += 1
            state["train_seconds"] += time.perf_counter() - t0
            rec["time_s"] = round(state["train_seconds"], 3)
            state["epoch"] += 1
            if config.patience is not None and state["bad_epochs"] >= config.patience:
                state["stopped_early"] = True
            with open(metrics_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.console.print(f"epoch {rec['epoch']}  loss {rec['train_loss']:.4f}  acc {rec['train_accuracy']:.4f}"
                              + (f"  val_acc {rec['valid_accuracy']:.4f}" if valid else ""))
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "state": dict(state), "labels": labels, "version": 1}, last_path)
    model.eval()
    history = read_metrics(metrics_path) if metrics_path.exists() else []
    return _summary(out_dir, state, history)
