"""Temporal-convolution family (``tcnet_s``, ``tcnet_m``): the mel bands are the channels, convs run along time.

A compute-lean sibling of :class:`~roomtone.models.vgg.VGG` with the same front end, input normalisation,
padding of short input, pooling heads, model contract and export path. Informed by TC-ResNet (Choi et al.,
"Temporal Convolution for Real-time Keyword Spotting on Mobile Devices", 2019), which reaches 2-D CNN
accuracy on speaker-independent keyword spotting with a few MFLOPs per second of audio: the idea taken from
it is to treat the spectrum of a frame as a feature vector and convolve along time only, so every layer is a
dense channel mix over a short sequence (GEMM-shaped work, fast on a CPU), not a small conv over a large map.
The layout here is our own:

* stem: one conv spanning all ``n_mels`` bands and 3 frames (``(n_mels, 3)`` kernel, no frequency padding:
  the map becomes ``(batch, channels[0], 1, frames)``) + BN + ReLU;
* stage ``i > 0``: ``depth[i]`` :class:`TemporalBlock` s of ``(1, kernel)`` convs; the first block of a
  stage takes its time stride from ``pool[i]`` and maps ``channels[i - 1] -> channels[i]`` (no shortcut
  there, so no 1x1 projection: the receptive field follows the conv path); the others are residual.

Feature map layout ``(batch, channels, 1, frames')``, as every model's: the frequency pooling of the head
sees one bin.

Measured (the recipe's config with ``model=tcnet_s``, 1 torch thread on a busy 2-core machine; ``vgg`` = the
recipe's own model): 13.9 MFLOP per second of audio, 1/12 of ``vgg``'s at the same hop.
FSDD official split 99.3 % in 146 s (``vgg`` 100 %, 531 s at 1 thread); insects 77.3 % per recording (``vgg``
79.5 %) in 311 s. **It does not generalise to unseen speakers**: FSDD by speaker 82.6 % against ``vgg``'s
94.6 %. The all-band stem learns absolute spectral templates, and a speaker's formants move them; ``vgg``'s
local 3x3 convs with frequency pooling do not depend on where in frequency a pattern sits. (A stem of
12-band patches max-pooled over frequency was worse: 70.3 %.) Use it where the test sources are heard in
training, or where absolute frequency identifies the class; the recipe does not pick it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models.registry import register_model
from roomtone.models.vgg import VGG, stage_ints


class TemporalBlock(nn.Module):
    """``(1, k)`` conv (time stride ``stride``) + BN + ReLU -> ``(1, k)`` conv + BN -> ``relu(x + .)``
    (residual when width and stride are kept, else ``relu(.)``)."""

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int = 9, stride: int = 1):
        super().__init__()
        self.residual = in_ch == out_ch and stride == 1
        self.conv1 = nn.Conv2d(in_ch, out_ch, (1, kernel), stride=(1, stride), padding=(0, kernel // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, (1, kernel), padding=(0, kernel // 2), bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(x + y if self.residual else y)


class AllBandConv(nn.Conv2d):
    """``Conv2d(1, out_ch, (n_mels, k))`` without frequency padding, computed as a ``(1, k)`` conv over the bands
    taken as channels: the same weights and result, but mkldnn's backward for a one-channel input with a tall
    kernel took 8x as long (24.6 vs 3.0 ms, batch 32 x 64 bands x 101 frames, 1 thread)."""

    def __init__(self, n_mels: int, out_ch: int, *, kernel: int = 3, stride: int = 1):
        super().__init__(1, out_ch, (n_mels, kernel), stride=(1, stride), padding=(0, kernel // 2), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, 1, n_mels, frames) -> (batch, out_ch, 1, frames')
        return nn.functional.conv2d(x.transpose(1, 2), self.weight.transpose(1, 2), stride=self.stride,
                                    padding=self.padding)


class TCNet(VGG):
    """Waveform -> log-mel (dB) -> per-band norm -> all-band stem -> temporal residual stages -> time head.

    Args (besides those of :class:`~roomtone.models.vgg.VGG`, whose front-end, head, norm and dropout
    arguments mean the same):
        channels: width of the stem, then of each stage (its length is 1 + the number of stages).
        depth: blocks per stage after the stem (one int, or one per entry of ``channels``; the stem's is ignored).
        pool: time stride per stage, written ``(1, time)`` like every model's pooling (one pair for all
            stages after the stem, or one per entry of ``channels``); default ``(1, 2)``. Frequency must be 1.
        kernel: time kernel of the stage convs (odd).
        width: multiplier on ``channels`` (rounded, at least 4).
    """

    def __init__(self, *, num_classes: int, channels: Sequence[int] = (48, 48, 72, 96), depth=1, pool=None,
                 kernel: int = 9, width: float = 1.0, dropout: float = 0.2, **kw):
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ParameterError(f"channels={channels!r} must be a non-empty list of positive ints")
        if not (isinstance(width, (int, float)) and width > 0):
            raise ParameterError(f"width={width!r} must be a positive number")
        if not isinstance(kernel, int) or isinstance(kernel, bool) or kernel < 1 or kernel % 2 == 0:
            raise ParameterError(f"kernel={kernel!r} must be an odd positive int (frames)")
        if pool is None:
            pool = [(1, 1)] + [(1, 2)] * (len(channels) - 1)
        elif isinstance(pool, (int, tuple)) or (isinstance(pool, list) and pool and isinstance(pool[0], int)):
            pool = [(1, 1)] + [pool] * (len(channels) - 1)
        if any((p if isinstance(p, int) else p[0]) != 1 for p in pool):
            raise ParameterError(f"pool={pool!r}: tcnet strides time only; write each as (1, time)")
        # a plain attribute (before Module.__init__): read by make_features
        self.block_spec = {"depth": stage_ints(depth, len(channels), "depth"), "kernel": kernel}
        widths = [max(4, int(round(c * width))) for c in channels]
        super().__init__(num_classes=num_classes, channels=widths, pool=pool, dropout=dropout, **kw)

    def make_features(self, in_chans: int, channels: list[int], pools: list[tuple[int, int]], *,
                      pool_type: str) -> nn.Sequential:
        depth, kernel = self.block_spec["depth"], self.block_spec["kernel"]
        n_mels = self.bn0.num_features
        stem = nn.Sequential(AllBandConv(n_mels, channels[0], stride=pools[0][1]), nn.BatchNorm2d(channels[0]),
                             nn.ReLU(inplace=True))
        stages, c_in = [stem], channels[0]
        for i in range(1, len(channels)):
            c, stride = channels[i], pools[i][1]
            blocks = [TemporalBlock(c_in if j == 0 else c, c, kernel=kernel, stride=stride if j == 0 else 1)
                      for j in range(max(1, depth[i]))]
            stages.append(nn.Sequential(*blocks))
            c_in = c
        return nn.Sequential(*stages)


@register_model
def tcnet_s(*, num_classes: int, **kw) -> TCNet:
    """Stem 48, 3 stages 48-72-96 of one block (k 9, stride 2 each): 1.8 s field at hop 10 ms."""
    kw.setdefault("channels", (48, 48, 72, 96))
    kw.setdefault("depth", 1)
    return TCNet(num_classes=num_classes, **kw)


@register_model
def tcnet_m(*, num_classes: int, **kw) -> TCNet:
    """Stem 48, 3 stages 48-64-96 of two blocks: 4.0 s field at hop 10 ms."""
    kw.setdefault("channels", (48, 48, 64, 96))
    kw.setdefault("depth", 2)
    return TCNet(num_classes=num_classes, **kw)
