"""Efficient CNN family (``effnet_s``, ``effnet_m``, ``effnet_l``): depthwise-separable residual blocks.

A compute-lean sibling of :class:`~roomtone.models.vgg.VGG` with the same front end, input normalisation,
padding of short input, pooling heads, model contract and export path. Informed by the keyword-spotting
nets that reach VGG-like accuracy with a small fraction of its operations (BC-ResNet, Kim et al. 2021;
MatchboxNet, Majumdar & Ginsburg 2020): the idea taken from them is to factor a 3x3 convolution into a
depthwise conv and a pointwise channel mix, to pool frequency (and time) early, and to keep the width
small. The layout here is our own:

* stem: one full conv (1 -> ``channels[0]``, 3x3, or 5 along an axis strided by 4 or 5 so no input is
  skipped) with stride ``pool[0]`` + BN + ReLU (default (2, 2): a quarter of the positions before any
  other work);
* stage ``i > 0``: ``pool[i]`` pooling;
* every stage then holds ``depth[i]`` :class:`SeparableBlock` s (depthwise conv + pointwise mix, residual);
  the first block of a stage that changes the width maps ``channels[i - 1] -> channels[i]`` in its
  pointwise conv (no shortcut: no extra 1x1 projection).

Feature map layout ``(batch, channels, freq, frames)``; pooling sizes are ``(freq, time)``. The
receptive field (:func:`roomtone.models.receptive_field`) follows the longest path through the convs (the
residual shortcut is shorter), which is what the registration order of the layers gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models.registry import register_model
from roomtone.models.vgg import VGG, stage_ints


class SeparableBlock(nn.Module):
    """Depthwise-separable block: depthwise ``k_freq x k_time`` conv + BN + ReLU -> 1x1 conv
    (``in_ch -> out_ch``) + BN -> ``relu(x + .)`` (residual when the width is kept, else ``relu(.)``).

    Why one depthwise ``k_freq x k_time`` kernel rather than a factored ``(k_freq, 1)`` + ``(1, k_time)``
    pair: on a 2-core CPU (torch 2.13, mkldnn) the pair took 2x the forward+backward time of one depthwise
    3x3 on a (32, 16, 32, 50) map and a dilated time conv 4x; the FLOPs saved are negligible next to the
    pointwise conv, the passes over memory are not.
    """

    def __init__(self, in_ch: int, out_ch: int | None = None, *, kernel: tuple[int, int] = (3, 3)):
        super().__init__()
        kf, kt = kernel
        out_ch = in_ch if out_ch is None else out_ch
        self.residual = out_ch == in_ch
        self.depthwise = nn.Conv2d(in_ch, in_ch, (kf, kt), padding=(kf // 2, kt // 2), groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.point = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.point(torch.relu(self.bn1(self.depthwise(x)))))
        return torch.relu(x + y if self.residual else y)


def stem_kernel(stride: tuple[int, int]) -> tuple[int, int]:
    """Kernel of the strided stem: 3 per axis, or the odd size >= the stride (no input sample is skipped)."""
    return tuple(max(3, 2 * (int(s) // 2) + 1) for s in stride)


class EffNet(VGG):
    """Waveform -> log-mel (dB) -> per-band norm -> separable residual stages -> freq pooling -> time head.

    Args (besides those of :class:`~roomtone.models.vgg.VGG`, whose front-end, head, norm, dropout and
    ``freq_pool`` arguments mean the same):
        channels: width of each stage (its length is the number of stages).
        depth: separable blocks per stage (one int for all stages, or one per stage).
        pool: pooling (freq, time) per stage (one pair for all, or one per stage); default ``(2, 2)``. The
            first stage's is the stride of the stem conv.
        kernel: ``(k_freq, k_time)`` of the depthwise convs (odd sizes).
        width: multiplier on ``channels`` (rounded, at least 4).
    """

    def __init__(self, *, num_classes: int, channels: Sequence[int] = (16, 32, 64, 128), depth=2,
                 pool=None, kernel: tuple[int, int] = (3, 3), width: float = 1.0, pool_type: str = "max",
                 dropout: float = 0.1, **kw):
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ParameterError(f"channels={channels!r} must be a non-empty list of positive ints")
        if not (isinstance(width, (int, float)) and width > 0):
            raise ParameterError(f"width={width!r} must be a positive number")
        try:
            kf, kt = (int(k) for k in kernel)
        except (TypeError, ValueError):
            raise ParameterError(f"kernel={kernel!r} must be a (k_freq, k_time) pair of odd positive ints") from None
        if kf < 1 or kt < 1 or kf % 2 == 0 or kt % 2 == 0:
            raise ParameterError(f"kernel={kernel!r} must be a (k_freq, k_time) pair of odd positive ints")
        spec = {"depth": stage_ints(depth, len(channels), "depth"), "kernel": (kf, kt)}
        if pool is None:
            pool = (2, 2)
        widths = [max(4, int(round(c * width))) for c in channels]
        self.block_spec = spec  # a plain attribute (before Module.__init__): read by make_features
        super().__init__(num_classes=num_classes, channels=widths, pool=pool, pool_type=pool_type,
                         dropout=dropout, **kw)

    def make_features(self, in_chans: int, channels: list[int], pools: list[tuple[int, int]], *,
                      pool_type: str) -> nn.Sequential:
        depth, kernel = self.block_spec["depth"], self.block_spec["kernel"]
        self.pools = [tuple(p) for p in pools]
        pool_cls = nn.MaxPool2d if pool_type == "max" else nn.AvgPool2d
        stages, c_in = [], in_chans
        for i, (c, p) in enumerate(zip(channels, pools, strict=True)):
            layers: list[nn.Module] = []
            if i == 0:  # strided stem: the first pooling is the stride of the one full conv
                k = stem_kernel(p)
                layers += [nn.Conv2d(c_in, c, k, stride=p, padding=(k[0] // 2, k[1] // 2), bias=False),
                           nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            elif p != (1, 1):
                layers.append(pool_cls(p))
            for j in range(max(depth[i], int(i > 0 and c != c_in))):  # the first block changes the width
                layers.append(SeparableBlock(c_in if j == 0 and i > 0 else c, c, kernel=kernel))
            stages.append(nn.Sequential(*layers))
            c_in = c
        return nn.Sequential(*stages)


def effnet_layers(depth: Sequence[int], *, pools: Sequence[tuple[int, int]], kernel: tuple[int, int] = (3, 3),
                  channels: Sequence[int] | None = None):
    """``(kernel, stride, dilation)`` list of an :class:`EffNet` stack (for receptive-field design without
    building the model): strided 3x3 stem, then per stage its pooling and its separable blocks (``depth[i]``,
    at least one where the width changes; ``channels=None``: the width changes at every stage)."""
    kf, kt = kernel
    out = []
    for i, (d, p) in enumerate(zip(depth, pools, strict=True)):
        if i == 0:
            out.append((stem_kernel(p), tuple(p), (1, 1)))
        elif tuple(p) != (1, 1):
            out.append((tuple(p), tuple(p), (1, 1)))
        widen = i > 0 and (channels is None or channels[i] != channels[i - 1])
        out += [((kf, kt), (1, 1), (1, 1)), ((1, 1), (1, 1), (1, 1))] * max(d, int(widen))
    return out


@register_model
def effnet_s(*, num_classes: int, **kw) -> EffNet:
    """Smallest: 4 stages 16-32-64-128, 1 separable block each (0.83 s field at hop 10 ms, like ``vgg``)."""
    kw.setdefault("channels", (16, 32, 64, 128))
    kw.setdefault("depth", 1)
    return EffNet(num_classes=num_classes, **kw)


@register_model
def effnet_m(*, num_classes: int, **kw) -> EffNet:
    """4 stages 16-32-64-128, 2 separable blocks each (1.4 s field at hop 10 ms)."""
    kw.setdefault("channels", (16, 32, 64, 128))
    kw.setdefault("depth", 2)
    return EffNet(num_classes=num_classes, **kw)


@register_model
def effnet_l(*, num_classes: int, **kw) -> EffNet:
    """Wider: 4 stages 32-64-128-256, 2 separable blocks each (1.4 s field at hop 10 ms)."""
    kw.setdefault("channels", (32, 64, 128, 256))
    kw.setdefault("depth", 2)
    return EffNet(num_classes=num_classes, **kw)
