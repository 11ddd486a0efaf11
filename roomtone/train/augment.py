"""Training-time augmentation glue: SpecAugment on the log-mel (``roomtone.features.SpecAugment``) and the
prepare-stage conditions on the waveform (``roomtone.prepare.conditions.make_condition``, train split)."""

from __future__ import annotations

import torch

from roomtone.config import AugmentConfig, SpecAugmentConfig


def make_spec_augment(cfg: SpecAugmentConfig):
    """``fn(spec (batch, 1, n_mels, frames), generator) -> spec`` or None when every mask count is 0."""
    if cfg.freq_masks <= 0 and cfg.time_masks <= 0:
        return None
    from roomtone.features import SpecAugment

    layer = SpecAugment(freq_masks=cfg.freq_masks, freq_width=cfg.freq_width,
                        time_masks=cfg.time_masks, time_width=cfg.time_width)
    layer.train()

    def apply(spec: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return layer(spec, generator=generator)

    return apply


def make_waveform_augment(cfg: AugmentConfig, *, sr: int, seed: int = 0):
    """The ``make_condition`` transform for training (bank split ``train``), or None when off."""
    if cfg.condition in (None, "clean"):
        return None
    from roomtone.prepare.conditions import make_condition

    return make_condition(cfg.condition, sr=sr, noise=cfg.noise, rooms=cfg.rooms, split="train",
                          snr_db=tuple(cfg.snr_db), mic=cfg.mic, p=cfg.p, seed=seed)

