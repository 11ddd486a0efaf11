"""Strategies of the one fit loop (:func:`roomtone.train.fit`): training from scratch, fine-tuning, probing.

A strategy turns a config and the splits into a :class:`Plan`: the full model (what ``best.pt``/``last.pt``
store and ``load_run`` rebuilds), the module that is optimized (the model, or its classifier for the
probe), the datasets the loop iterates, the parameter groups and how one step runs. Everything else (batch
order, augmentation seeds, AMP, DDP, checkpoints, patience, resume, schedules) is the loop's, the same in
every mode.

* scratch (``pretrained=None``): ``create_model(config.model, ...)`` with fresh weights; all parameters train.
* finetune: the catalogue backbone ``config.pretrained`` with its weights and a fresh classifier; the
  classifier trains at ``lr``, the backbone at ``lr * backbone_lr_scale``. The classifier sees the pooled
  embedding standardized with the mean/std of the training clips' initial embeddings (a fixed affine step,
  folded into its first Linear in what is saved): backbones' embeddings are far from unit scale (the
  speech embedding's is ~40), which a fresh head at ``lr`` cannot follow. With ``unfreeze_schedule=[e0,
  e1, ...]`` backbone stage k from the top (``model.backbone_stages()``) trains from epoch ``e_k`` on
  (stages without an entry stay frozen); frozen stages keep their BatchNorm statistics.
* probe: the backbone is frozen. The pooled embeddings ``forward_head(forward_features(x), pre_logits=True)``
  of the train/valid clips are computed once (cached in ``RUN_DIR/embeddings/``), standardized, and the
  loop trains the classifier on them; what is saved is the full model with the standardization folded
  into the classifier's first Linear.

Settings that cannot apply in a mode are refused by :func:`check_config` with what to change.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from roomtone.config import PROBE_OVERRIDES, FrontendConfig, TrainConfig
from roomtone.errors import ParameterError
from roomtone.files import atomic_path


@dataclass
class Plan:
    """What the fit loop runs (see the module docstring)."""

    model: nn.Module
    net: nn.Module
    model_config: dict
    train_ds: torch.utils.data.Dataset
    valid_ds: torch.utils.data.Dataset | None
    balanced_rows: list | None
    collate: Callable
    param_groups: list[dict]
    step: Callable  # (net, x, spec_fn) -> logits
    saved_state: Callable[[], dict]  # the full model's state dict, as best.pt/last.pt store it
    start_epoch: Callable[[int], None]
    transfer: dict | None = None
    on_audio: bool = True  # batches are waveforms (False for the probe: cached embeddings, no compute meter)
    folds: bool = False  # saved_state() folds a standardization into the classifier: resume needs net's own state


def check_config(config: TrainConfig, *, world_size: int = 1) -> None:
    """Refuse settings that have no meaning in ``config``'s mode (a ParameterError says what to change)."""
    from roomtone.models.pretrained import CATALOG
    from roomtone.train.augment import make_spec_augment

    name = config.pretrained
    if name is not None and config.ema:
        raise ParameterError(f"ema={config.ema!r} averages the weights of a model trained from scratch; with "
                             f"pretrained={name!r} set ema=0")
    if name is None:
        if config.unfreeze_schedule is not None or config.backbone_lr_scale != TrainConfig.backbone_lr_scale:
            raise ParameterError(f"unfreeze_schedule={config.unfreeze_schedule!r} / backbone_lr_scale="
                                 f"{config.backbone_lr_scale!r} apply to mode='finetune' with a pretrained backbone; "
                                 f"pretrained=None trains {config.model!r} from scratch")
        return
    if name not in CATALOG:
        raise ParameterError(f"pretrained={name!r} is not a known backbone; allowed: {sorted(CATALOG)}")
    entry = CATALOG[name]
    if config.model not in (TrainConfig.model, name):
        raise ParameterError(f"model={config.model!r} with pretrained={name!r}: the model is the backbone's; "
                             f"leave model unset or set it to {name!r}")
    if config.frontend != FrontendConfig():
        raise ParameterError(f"frontend={config.frontend} does not apply to pretrained={name!r}: the backbone has its "
                             f"own front end ({entry.sr} Hz); leave frontend at its defaults")
    if config.mode == "probe":
        if make_spec_augment(config.specaugment) is not None or config.augment.condition not in (None, "clean"):
            raise ParameterError(
                f"mode='probe' trains on cached embeddings of the clean clips, so specaugment={config.specaugment} "
                f"and augment.condition={config.augment.condition!r} cannot apply; switch them off "
                f"({', '.join(f'{k}={v}' for k, v in PROBE_OVERRIDES.items())}; `roomtone train --mode probe` "
                f"does this) or use mode='finetune'")
        if config.unfreeze_schedule is not None or config.backbone_lr_scale != TrainConfig.backbone_lr_scale:
            raise ParameterError("unfreeze_schedule / backbone_lr_scale apply to mode='finetune'; mode='probe' "
                                 "keeps the whole backbone frozen")
        return
    sched = config.unfreeze_schedule
    if sched is not None and (any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in sched)
                              or list(sched) != sorted(sched)):
        raise ParameterError(f"unfreeze_schedule={sched!r} must be non-decreasing epochs >= 0 (stage k from the top "
                             f"unfreezes at epoch schedule[k])")
    if sched is not None and world_size > 1:
        raise ParameterError(f"unfreeze_schedule={sched!r} is not supported under DDP (world size {world_size}): "
                             f"DistributedDataParallel fixes the trained parameters when it wraps the model")


# ---- bandwidth -----------------------------------------------------------------------------------------

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


# ---- probe helpers ---------------------------------------------------------------------------------------

def fold_standardization(head: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make ``head(x)`` equal the trained ``head((x - mean) / std)`` by rescaling its first Linear in place."""
    lin = head if isinstance(head, nn.Linear) else next(m for m in head.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        w = lin.weight / std
        lin.bias -= (w * mean).sum(dim=1)
        lin.weight.copy_(w)


def folded_state(model: nn.Module, head: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> dict:
    """``model``'s state dict (on the CPU) with :func:`fold_standardization` applied to its classifier ``head``:
    what a run that trained ``head`` on standardized embeddings saves."""
    import copy

    prefix = next(n for n, m in model.named_modules() if m is head) + "."
    folded = copy.deepcopy(head).cpu()
    folded._forward_pre_hooks.clear()
    fold_standardization(folded, mean.cpu(), std.cpu())
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(prefix)}
    sd.update({prefix + k: v for k, v in folded.state_dict().items()})
    return sd


def collate_embeddings(items):
    """``[(embedding (D,), target)] -> (x (batch, D), y (batch,), None)``: the loop's batch triple."""
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items]), None


class EmbeddingDataset(torch.utils.data.Dataset):
    """``(embedding, target)`` pairs of cached, standardized embeddings."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


@torch.no_grad()
def pooled_embeddings(model: nn.Module, dataset, *, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings (n, D), targets (n,))``: ``model.forward_head(model.forward_features(x), pre_logits=True)``."""
    from roomtone.prepare.dataset import collate_padded

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_padded)
    was = model.training
    model.eval()
    embs, ys = [], []
    for x, y, _ in loader:
        embs.append(model.forward_head(model.forward_features(x.to(device)), pre_logits=True).float().cpu())
        ys.append(y)
    model.train(was)
    return torch.cat(embs), torch.cat(ys)


def cached_embeddings(model, rows, *, labels, model_config: dict, sr: int, clip, cache_dir: Path, split: str,
                      batch_size: int, device, compute: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled embeddings ``(n, D)`` and targets ``(n,)`` of ``rows``, computed once and kept in ``cache_dir``
    (keyed by the model config, rows, rate and clip length). ``compute=False`` only reads the cache."""
    from safetensors.torch import load_file, save_file

    from roomtone.train.data import make_dataset

    h = hashlib.sha256(json.dumps([model_config, sr, clip], sort_keys=True, default=str).encode())
    for r in rows:
        h.update(f"{r.path}|{r.label}|{r.start}|{r.end}\n".encode())
    path = cache_dir / f"{split}-{h.hexdigest()[:16]}.safetensors"
    if path.exists() or not compute:
        d = load_file(str(path))
        return d["embeddings"], d["targets"]
    ds = make_dataset(rows, labels=labels, sr=sr, clip_seconds=clip)
    emb, y = pooled_embeddings(model, ds, batch_size=batch_size, device=device)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"embeddings": emb.contiguous(), "targets": y.contiguous()}, str(tmp))
    return emb, y


# ---- plans -----------------------------------------------------------------------------------------------

def decay_groups(params: list[tuple[str, nn.Parameter]], *, lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: weights (ndim > 1) with ``weight_decay``, biases and norms without."""
    return [{"params": [p for _, p in params if p.ndim > 1], "weight_decay": weight_decay, "lr": lr},
            {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr}]


def _seeded(config: TrainConfig, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # weight init (and a fresh classifier): a function of the seed only
        return build()


def make_plan(config: TrainConfig, splits: dict, meta: dict, *, labels: list[str], out_dir: Path, device,
              info) -> Plan:
    """The :class:`Plan` of ``config`` (scratch when ``pretrained`` is None, else ``config.mode``)."""
    from roomtone.models.compute import to_training_layout
    from roomtone.prepare.dataset import collate_padded
    from roomtone.train.data import data_sr, train_valid_datasets
    from roomtone.train.distributed import barrier
    from roomtone.train.run import build_model, model_config_of

    check_config(config, world_size=info.world_size)
    clip = config.clip_seconds if config.clip_seconds is not None else meta.get("clip_seconds")
    if config.pretrained is None:
        model_config = model_config_of(config, num_classes=len(labels), sr=data_sr(splits, meta))
        model = _seeded(config, lambda: build_model(model_config)).to(device)
        transfer = None
    else:
        from roomtone.models.pretrained import CATALOG

        name, entry = config.pretrained, CATALOG[config.pretrained]
        model_config = {"name": name, "num_classes": len(labels), **(config.model_kwargs or {})}
        model = _seeded(config, lambda: build_model({**model_config, "pretrained": True})).to(device)
        transfer = {"pretrained": name, "mode": config.mode, "sr": int(model.sr), "credit": entry.credit,
                    "licence": entry.licence,
                    "bandwidth_warning": check_bandwidth(model, splits["train"], meta, name=name)}
    to_training_layout(model)
    sr = int(model.sr)
    head = model.get_classifier() if config.pretrained else None

    def embeddings_of(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's cached pooled embeddings of ``split`` (computed once, by the main process)."""
        common = dict(labels=labels, model_config=model_config, sr=sr, clip=clip, cache_dir=out_dir / "embeddings",
                      split=split, batch_size=2 * config.batch_size, device=device)
        if info.is_main:
            cached_embeddings(model, splits[split], **common)
        barrier(info)
        return cached_embeddings(model, splits[split], compute=False, **common)

    if config.pretrained is not None and config.mode == "probe":
        data = {split: embeddings_of(split) for split in ("train", "valid") if splits[split]}
        xtr, ytr = data["train"]
        mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
        def start_probe_epoch(epoch: int) -> None:
            model.eval()
            head.train()

        valid = data.get("valid")
        return Plan(model=model, net=head, model_config=model_config, on_audio=False,
                    train_ds=EmbeddingDataset((xtr - mean) / std, ytr),
                    valid_ds=EmbeddingDataset((valid[0] - mean) / std, valid[1]) if valid else None,
                    balanced_rows=splits["train"] if config.balanced else None, collate=collate_embeddings,
                    param_groups=decay_groups(list(head.named_parameters()), lr=config.lr,
                                              weight_decay=config.weight_decay),
                    step=lambda net, x, spec_fn: net(x), saved_state=lambda: folded_state(model, head, mean, std),
                    start_epoch=start_probe_epoch,
                    transfer=transfer)

    train_ds, valid_ds, balanced_rows = train_valid_datasets(config, splits, labels=labels, sr=sr, clip_seconds=clip)
    saved_state, folds = (lambda: model.state_dict()), False
    if head is None:
        groups = decay_groups(list(model.named_parameters()), lr=config.lr, weight_decay=config.weight_decay)
        start_epoch = lambda epoch: model.train()  # noqa: E731
    else:
        xtr = embeddings_of("train")[0]
        mean, std = xtr.mean(0).to(device), xtr.std(0).clamp_min(1e-6).to(device)
        head.register_forward_pre_hook(lambda module, args: ((args[0] - mean) / std, *args[1:]))
        folds = True
        saved_state = lambda: folded_state(model, head, mean, std)  # noqa: E731
        head_ids = {id(p) for p in head.parameters()}
        backbone = [(n, p) for n, p in model.named_parameters() if id(p) not in head_ids]
        groups = (decay_groups(list(head.named_parameters()), lr=config.lr, weight_decay=config.weight_decay)
                  + decay_groups(backbone, lr=config.lr * config.backbone_lr_scale, weight_decay=config.weight_decay))
        schedule = config.unfreeze_schedule

        def start_epoch(epoch: int) -> None:
            model.train()
            for p in model.parameters():
                p.requires_grad_(True)
            if not schedule:
                return
            for k, stage in enumerate(model.backbone_stages()):
                if k >= len(schedule) or epoch < schedule[k]:
                    stage.eval()  # keep the BatchNorm statistics of a frozen stage
                    for p in stage.parameters():
                        p.requires_grad_(False)

    return Plan(model=model, net=model, model_config=model_config, train_ds=train_ds, valid_ds=valid_ds,
                balanced_rows=balanced_rows, collate=collate_padded, param_groups=groups,
                step=lambda net, x, spec_fn: net(x, spec_transform=spec_fn),
                saved_state=saved_state, start_epoch=start_epoch, transfer=transfer, folds=folds)
