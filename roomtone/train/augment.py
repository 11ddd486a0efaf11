"""Training-time augmentation glue: SpecAugment on the log-mel (``roomtone.features.SpecAugment``) and the
prepare-stage conditions on the waveform (``roomtone.prepare.conditions.make_condition``, train split)."""

from __future__ import annotations

import torch

from roomtone.config import AugmentConfig, SpecAugmentConfig


def stretch(spec: torch.Tensor, *, freq_factor: torch.Tensor, time_factor: torch.Tensor) -> torch.Tensor:
    """Stretch each example of ``spec (batch, channels, freq, frames)`` by its own factors (bilinear).

    Output bin ``f`` reads input bin ``f * freq_factor`` (anchored at the lowest band: > 1 moves content
    down, like a longer vocal tract); output frame ``t`` reads ``centre + (t - centre) * time_factor``.
    Edges are repeated. ``freq_factor``/``time_factor``: ``(batch,)``.
    """
    b = spec.shape[0]
    theta = spec.new_zeros(b, 2, 3)
    theta[:, 0, 0] = time_factor.to(spec)
    theta[:, 1, 1] = freq_factor.to(spec)
    theta[:, 1, 2] = freq_factor.to(spec) - 1.0  # y_in = a * y_out + (a - 1): fixes y = -1 (lowest band)
    grid = torch.nn.functional.affine_grid(theta, list(spec.shape), align_corners=True)
    return torch.nn.functional.grid_sample(spec, grid, mode="bilinear", padding_mode="border", align_corners=True)


def make_spec_augment(cfg: SpecAugmentConfig):
    """``fn(spec (batch, 1, n_mels, frames), generator) -> spec`` (stretch, then SpecAugment masks), or None
    when everything is off."""
    use_masks = cfg.freq_masks > 0 or cfg.time_masks > 0
    use_stretch = cfg.freq_stretch > 0 or cfg.time_stretch > 0
    if not use_masks and not use_stretch:
        return None
    layer = None
    if use_masks:
        from roomtone.features import SpecAugment

        layer = SpecAugment(freq_masks=cfg.freq_masks, freq_width=cfg.freq_width,
                            time_masks=cfg.time_masks, time_width=cfg.time_width)
        layer.train()

    def apply(spec: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if use_stretch:
            b = spec.shape[0]
            ff = 1.0 + cfg.freq_stretch * (2 * torch.rand(b, generator=generator) - 1)
            tf = 1.0 + cfg.time_stretch * (2 * torch.rand(b, generator=generator) - 1)
            spec = stretch(spec, freq_factor=ff.to(spec.device), time_factor=tf.to(spec.device))
        if layer is not None:
            spec = layer(spec, generator=generator)
        return spec

    return apply


def make_waveform_augment(cfg: AugmentConfig, *, sr: int, seed: int = 0):
    """The ``make_condition`` transform for training (bank split ``train``), or None when off."""
    if cfg.condition in (None, "clean"):
        return None
    from roomtone.prepare.conditions import make_condition

    return make_condition(cfg.condition, sr=sr, noise=cfg.noise, rooms=cfg.rooms, split="train",
                          snr_db=tuple(cfg.snr_db), mic=cfg.mic, p=cfg.p, seed=seed)

