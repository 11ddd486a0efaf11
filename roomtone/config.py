"""Dataclass configs with YAML in and out. ``TrainConfig`` is what ``roomtone train`` runs and what a
run directory stores as ``config.yaml`` (fully resolved, so a run can be rebuilt from it alone).

    cfg = TrainConfig(epochs=20, model="vgg")
    cfg.to_yaml("cfg.yaml"); cfg = TrainConfig.from_yaml("cfg.yaml")
    cfg = cfg.replace(**{"epochs": 5, "specaugment.time_masks": 1})
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from roomtone.errors import ParameterError


@dataclass
class FrontendConfig:
    """Log-mel front end of the model (``roomtone.features.log_mel``).

    None = from the data: ``sr`` is the prepared folder's rate (``prepare.json``), ``n_fft``/``hop_length``/
    ``n_mels`` come from :func:`roomtone.features.frontend_defaults` at that rate (:meth:`resolved`).
    """

    sr: int | None = None
    n_fft: int | None = None
    hop_length: int | None = None
    win_length: int | None = None
    n_mels: int | None = None
    fmin: float = 0.0
    fmax: float | None = None

    def resolved(self, *, sr: int | None = None) -> FrontendConfig:
        """A copy with every None filled: ``sr`` from this config or else ``sr=``, the rest from
        ``frontend_defaults``. Raises ParameterError when neither gives a rate."""
        from roomtone.features.defaults import frontend_defaults

        rate = self.sr if self.sr is not None else sr
        if rate is None:
            raise ParameterError("frontend.sr is None and the data gives no sample rate; set frontend.sr")
        d = frontend_defaults(sr=int(rate))
        return dataclasses.replace(self, sr=int(rate), n_fft=self.n_fft or d["n_fft"],
                                   hop_length=self.hop_length or d["hop_length"], n_mels=self.n_mels or d["n_mels"])


@dataclass
class SpecAugmentConfig:
    """SpecAugment (``roomtone.features.SpecAugment``) on the log-mel during training. 0 masks = off.

    ``freq_stretch`` / ``time_stretch``: per-example random stretch of the log-mel by a factor in
    ``[1 - x, 1 + x]`` along frequency (anchored at the lowest band, like vocal tract length perturbation)
    and time (about the centre); 0 = off. Applied before the masks, with the same per-step generator.
    """

    freq_masks: int = 2
    freq_width: int = 8
    time_masks: int = 2
    time_width: int = 10
    freq_stretch: float = 0.15
    time_stretch: float = 0.15


@dataclass
class AugmentConfig:
    """On-the-fly prepare-stage conditions (``roomtone.prepare.conditions.make_condition``), train split only.

    ``condition``: ``None``/``"clean"`` (off), ``"noise"``, ``"room"``, ``"mic"`` (default: half the
    examples through a simulated phone microphone - on FSDD with held-out speakers it added ~3 points)
    or ``"all"``, or a ``+``-joined combination such as ``"room+mic"``.
    ``noise``/``rooms``: bank folders/CSVs (None = procedural noise / simulated rooms). ``p``: probability
    that an example is transformed.
    """

    condition: str | None = "mic"
    noise: str | None = None
    rooms: str | None = None
    snr_db: tuple[float, float] = (0.0, 20.0)
    mic: str = "phone"
    p: float = 0.5


#: What the probe (``pretrained=..., mode="probe"``) switches off: it trains on embeddings of the clean clips.
PROBE_OVERRIDES = {"specaugment.freq_masks": 0, "specaugment.time_masks": 0, "specaugment.freq_stretch": 0.0,
                   "specaugment.time_stretch": 0.0, "augment.condition": None}


@dataclass
class TrainConfig:
    """Everything a training run needs. These constants are the API fallback; ``roomtone train`` without a
    config uses :func:`roomtone.recipe.recipe` (settings measured on the data). ``frontend`` fields left None
    are resolved from the data's sample rate when training starts."""

    model: str = "vgg"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    clip_seconds: float | None = 1.0
    window_hop: float | None = None     # rows longer than clip_seconds -> windows of clip_seconds every window_hop s
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"          # "onecycle" | "cosine" | "constant"
    warmup_epochs: float = 1.0          # cosine only (onecycle warms up for pct_start)
    label_smoothing: float = 0.05
    mixup: float = 0.0                  # Beta(alpha, alpha) alpha; 0 = off
    ema: float = 0.0                    # decay per step of an exponential moving average of the weights (validated
                                        # and saved instead of the raw weights); 0 = off
    balanced: bool = False              # class-balanced sampling
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    patience: int | None = 4            # early stopping on validation (epochs without improvement)
    monitor: str = "valid_accuracy"     # "valid_accuracy" | "valid_macro_f1" | "valid_loss"
    select_after: float = 0.0           # share of the run's steps before which no epoch becomes best.pt (their
                                        # validation is still logged); 0 = every epoch may, 1 = the last epoch only
    valid_fraction: float = 0.1         # carved from train by group when the manifest has no valid rows
    seed: int = 0
    amp: str = "auto"                   # "auto" (CUDA only) | "on" | "off"
    device: str = "auto"                # "auto" | "cpu" | "cuda" | "cuda:N"
    num_workers: int = 0                # DataLoader workers; on 2 cores 1 worker made a 38 s FSDD run take 66 s
    cache_audio: bool = True            # keep decoded clips in memory after the first epoch
    checkpoint_every: int = 50          # steps between step-level checkpoints (last.pt); 0 = epoch ends only
    max_steps: int | None = None        # stop after this many optimizer steps (smoke runs)
    max_seconds: float | None = None    # keep to this many training seconds: from the second epoch on the loop
                                        # cuts the steps left to what fits at its measured rate and re-plans the
                                        # schedule (roomtone.train.schedule); never adds steps. None = no cap
    # transfer learning: strategies of the one fit loop (roomtone.train.strategy); pretrained = catalogue name
    pretrained: str | None = None
    mode: str = "probe"                 # "probe" | "finetune"
    backbone_lr_scale: float = 0.1
    unfreeze_schedule: list[int] | None = None

    def __post_init__(self) -> None:
        for name, cls in (("frontend", FrontendConfig), ("specaugment", SpecAugmentConfig), ("augment", AugmentConfig)):
            v = getattr(self, name)
            if isinstance(v, dict):
                setattr(self, name, _build(cls, v, name))
        if isinstance(self.augment.snr_db, list):
            self.augment.snr_db = tuple(self.augment.snr_db)
        self.validate()

    def validate(self) -> None:
        """Check values; raise ParameterError naming the bad value and what is allowed."""
        def pos(name, v, allow_none=False):
            if v is None and allow_none:
                return
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise ParameterError(f"{name}={v!r} must be a positive number")

        pos("epochs", self.epochs)
        pos("batch_size", self.batch_size)
        pos("lr", self.lr)
        pos("clip_seconds", self.clip_seconds, allow_none=True)
        pos("max_steps", self.max_steps, allow_none=True)
        pos("max_seconds", self.max_seconds, allow_none=True)
        pos("window_hop", self.window_hop, allow_none=True)
        if self.window_hop is not None and self.clip_seconds is None:
            raise ParameterError(f"window_hop={self.window_hop!r} needs clip_seconds (the window length)")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ParameterError(f"schedule={self.schedule!r} must be 'onecycle', 'cosine' or 'constant'")
        if not 0 <= self.label_smoothing < 1:
            raise ParameterError(f"label_smoothing={self.label_smoothing!r} must be in [0, 1)")
        if not 0 <= self.ema < 1:
            raise ParameterError(f"ema={self.ema!r} must be in [0, 1) (a decay per optimizer step; 0 = off)")
        if self.mixup < 0:
            raise ParameterError(f"mixup={self.mixup!r} must be >= 0 (0 = off)")
        if self.monitor not in ("valid_accuracy", "valid_macro_f1", "valid_loss"):
            raise ParameterError(f"monitor={self.monitor!r} must be 'valid_accuracy', 'valid_macro_f1' or 'valid_loss'")
        if not 0 <= self.select_after <= 1:
            raise ParameterError(f"select_after={self.select_after!r} must be in [0, 1] (a share of the run's steps)")
        if not 0 <= self.valid_fraction < 1:
            raise ParameterError(f"valid_fraction={self.valid_fraction!r} must be in [0, 1)")
        if self.amp not in ("auto", "on", "off"):
            raise ParameterError(f"amp={self.amp!r} must be 'auto', 'on' or 'off'")
        if self.mode not in ("probe", "finetune"):
            raise ParameterError(f"mode={self.mode!r} must be 'probe' or 'finetune'")
        if self.augment.condition is not None:
            from roomtone.prepare.conditions import condition_parts

            try:
                condition_parts(self.augment.condition)
            except ParameterError as exc:
                raise ParameterError(f"augment.condition: {exc}") from None
        if self.checkpoint_every < 0:
            raise ParameterError(f"checkpoint_every={self.checkpoint_every!r} must be >= 0 (0 = epoch ends only)")

    # ---- dict / YAML ----
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"]["snr_db"] = list(d["augment"]["snr_db"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _build(cls, d or {}, "config")

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            from roomtone.files import atomic_write_text

            atomic_write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        import yaml

        path = Path(path)
        if not path.exists():
            raise ParameterError(f"config file {str(path)!r} does not exist")
        try:
            d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ParameterError(f"config file {str(path)!r} is not UTF-8 text") from exc
        except yaml.YAMLError as exc:  # also a tag like !!python/object: safe_load never builds objects
            raise ParameterError(f"config file {str(path)!r} is not plain YAML: {' '.join(str(exc).split())}") from exc
        if not isinstance(d, dict):
            raise ParameterError(f"config file {str(path)!r} must hold a mapping, got {type(d).__name__}")
        return cls.from_dict(d)

    def replace(self, **overrides) -> TrainConfig:
        """A copy with overrides; dotted keys reach nested configs (``"frontend.n_mels": 40``)."""
        d = self.to_dict()
        for key, value in overrides.items():
            target = d
            *head, last = key.split(".")
            for h in head:
                if h not in target or not isinstance(target[h], dict):
                    raise ParameterError(f"override {key!r}: {h!r} is not a nested config")
                target = target[h]
            if last not in target and target is not d.get("model_kwargs"):
                raise ParameterError(f"override {key!r}: unknown field {last!r}; known: {sorted(target)}")
            target[last] = value
        return TrainConfig.from_dict(d)


def _build(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ParameterError(f"{where} must be a mapping, got {d!r}")
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ParameterError(f"{where}: unknown field(s) {sorted(unknown)}; known fields: {sorted(known)}")
    return cls(**d)
