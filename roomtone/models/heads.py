"""Pooling heads over time: ``mean``, ``max``, ``mean+max``, ``attention``, ``autopool``.

Every head maps frame features ``(batch, channels, frames)`` (frequency already pooled) to clip logits
``(batch, num_classes)``. Which one fits depends on how sparse the target pattern is in time: ``mean``
for a pattern that fills the clip (a guitar tone through a song), ``max`` for a short event in a long
clip (a bird call in a minute of forest); ``attention`` and ``autopool`` learn where to sit between.

* ``mean`` / ``max`` / ``mean+max``: pool the features over time, then a linear classifier
  (``mean+max`` adds the two poolings, as PANNs does).
* ``attention``: frame-level logits ``z`` and attention scores ``a`` (both 1x1 convs);
  clip logit = ``sum_t softmax_t(a)[c, t] * z[c, t]``.
* ``autopool`` (McFee et al. 2018): frame-level logits ``z`` and one learned temperature ``alpha_c`` per
  class; clip logit = ``sum_t softmax_t(alpha_c * z[c, t]) * z[c, t]``. ``alpha = 0`` is the mean,
  ``alpha -> inf`` the max, ``alpha -> -inf`` the min.
"""

from __future__ import annotations

import torch
from torch import nn

from roomtone.errors import ParameterError

HEADS = ("mean", "max", "mean+max", "attention", "autopool")


class PoolHead(nn.Module):
    """``mean``, ``max`` or ``mean+max`` over time, then dropout and a linear classifier."""

    def __init__(self, in_features: int, num_classes: int, *, pool: str = "mean", dropout: float = 0.0):
        super().__init__()
        if pool not in ("mean", "max", "mean+max"):
            raise ParameterError(f"pool={pool!r} must be one of 'mean', 'max', 'mean+max'")
        self.pool = pool
        self.in_features = in_features
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def pool_time(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, frames) -> (batch, channels)``."""
        if self.pool == "mean":
            return x.mean(dim=-1)
        if self.pool == "max":
            return x.amax(dim=-1)
        return x.mean(dim=-1) + x.amax(dim=-1)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool_time(x)
        return x if pre_logits else self.fc(self.drop(x))

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()


class AttentionHead(nn.Module):
    """Frame logits weighted by a learned softmax attention over time (per class)."""

    def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(dropout)
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        self.cla = nn.Conv1d(self.in_features, num_classes, 1)
        self.att = nn.Conv1d(self.in_features, num_classes, 1)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cla(self.drop(x))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x.mean(dim=-1)
        x = self.drop(x)
        w = torch.softmax(self.att(x), dim=-1)
        return (w * self.cla(x)).sum(dim=-1)


class AutoPoolHead(nn.Module):
    """Frame logits pooled with a learned per-class softmax temperature ``alpha`` (mean <-> max)."""

    def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.0, alpha_init: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.alpha_init = alpha_init
        self.drop = nn.Dropout(dropout)
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        self.cla = nn.Conv1d(self.in_features, num_classes, 1)
        self.alpha = nn.Parameter(torch.full((num_classes, 1), float(self.alpha_init)))

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cla(self.drop(x))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x.mean(dim=-1)
        z = self.cla(self.drop(x))
        w = torch.softmax(self.alpha * z, dim=-1)
        return (w * z).sum(dim=-1)


def create_head(name: str, *, in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Head by name (one of :data:`HEADS`)."""
    if name in ("mean", "max", "mean+max"):
        return PoolHead(in_features, num_classes, pool=name, dropout=dropout)
    if name == "attention":
        return AttentionHead(in_features, num_classes, dropout=dropout)
    if name == "autopool":
        return AutoPoolHead(in_features, num_classes, dropout=dropout)
    raise ParameterError(f"head={name!r} is not known; choose one of {list(HEADS)}")
