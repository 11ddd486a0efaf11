"""The aiSFX sound-effects embedding network (Ma & Lerch, ISMIR 2022), rebuilt in roomtone.

Architecture (from the ``aisfx`` 0.1.2 package): four VGG-style blocks (two 3x3 conv without bias,
BatchNorm, ReLU each) with 64, 128, 256, 512 channels and 2x2 max pooling after the first three,
then mean over the mel axis and max over time -> a 512-d embedding. The weights (CC BY 4.0,
A. B. Ma and A. Lerch) are obtained with ``roomtone pretrained fetch aisfx``.

Front end (the package's librosa path): 44.1 kHz mono, peak-normalized per clip, power mel
spectrogram with n_fft 2048 (Hann, centred, zero padding), hop 1024, 96 HTK mel bands over
0-22050 Hz with each filter normalized to unit sum, then ``log10(1e4 * mel + 1)`` divided by
9.457798957824707 (the package's "original" min-max scale).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models.panns import ConvBlock, make_head, padded_batch
from roomtone.models.registry import register_model

SR = 44100
N_FFT = 2048
HOP_LENGTH = 1024
N_MELS = 96
FMIN = 0.0
FMAX = 22050.0
SPEC_MAX = 9.457798957824707  # min-max scale of the original training features (min 0)
EMBEDDING_SIZE = 512
CHANNELS = (64, 128, 256, 512)
POOLS = (2, 2, 2, 1)


class AisfxFrontend(nn.Module):
    """``(batch, time)`` at 44.1 kHz -> features ``(batch, frames, 96)`` as the aiSFX network expects.

    ``peak_normalize`` scales each clip to a peak of 1 first (the package does this per file).
    """

    def __init__(self, *, peak_normalize: bool = True):
        super().__init__()
        from roomtone.features import MelSpectrogram, PowerToDB

        self.peak_normalize = peak_normalize
        self.mel = MelSpectrogram(
            sr=SR, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, n_mels=N_MELS, fmin=FMIN,
            fmax=FMAX, htk=True, norm=None, center=True, pad_mode="constant",
        )
        with torch.no_grad():  # librosa's norm=1.0 / Essentia's "unit_sum": each filter sums to 1
            self.mel.fb /= self.mel.fb.sum(dim=1, keepdim=True).clamp_min(1e-12)
        self.compress = PowerToDB(compression="log1p", gain=1e4)  # ln(1 + 1e4 * mel)
        self.sr, self.n_fft, self.hop_length, self.win_length = SR, N_FFT, HOP_LENGTH, N_FFT
        self.n_mels, self.fmin, self.fmax = N_MELS, FMIN, FMAX

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.peak_normalize:
            peak = waveform.abs().amax(dim=-1, keepdim=True)
            waveform = waveform / torch.where(peak > 0, peak, torch.ones_like(peak))
        logmel = self.compress(self.mel(waveform))  # (batch, mels, frames), natural log
        return (logmel / (math.log(10.0) * SPEC_MAX)).transpose(-1, -2)


class AisfxBackbone(nn.Module):
    """Features ``(batch, frames, 96)`` -> frame maps; keys ``conv_block{1..4}.*`` as in the package."""

    def __init__(self):
        super().__init__()
        ins = (1, *CHANNELS[:-1])
        for i, (cin, cout) in enumerate(zip(ins, CHANNELS, strict=True), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(cin, cout, pool_type="max"))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="leaky_relu")

    def frames(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, 96)`` -> ``(batch, frames // 8, 512)`` (mean over the mel axis)."""
        x = features.unsqueeze(1)
        for i, pool in enumerate(POOLS, start=1):
            x = getattr(self, f"conv_block{i}")(x, pool)
        return x.mean(dim=3).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, 96)`` -> embedding ``(batch, 512)`` (max over time)."""
        return self.frames(features).amax(dim=1)


class Aisfx(nn.Module):
    """aiSFX backbone + a linear classifier: waveform ``(batch, time)`` at 44.1 kHz -> logits."""

    sr = SR
    embedding_size = EMBEDDING_SIZE
    min_frames = 8  # three 2x2 poolings

    def __init__(self, *, num_classes: int = 10, peak_normalize: bool = True, head: str = "linear", hidden: int = 256):
        super().__init__()
        if int(num_classes) < 1:
            raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
        self.num_classes = int(num_classes)
        self.frontend = AisfxFrontend(peak_normalize=peak_normalize)
        self.backbone = AisfxBackbone()
        self.head_kind, self.hidden = head, hidden
        self.head = make_head(head, EMBEDDING_SIZE, self.num_classes, hidden)

    @property
    def min_samples(self) -> int:
        return (self.min_frames - 1) * HOP_LENGTH + 1

    @property
    def frame_hop_seconds(self) -> float:
        """Time between two rows of :meth:`forward_frames` (8 hops of 1024 samples), in seconds."""
        return 8 * HOP_LENGTH / SR

    def features(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        """``(batch, time)`` -> network input ``(batch, frames, 96)``.

        ``spec_transform`` (e.g. SpecAugment with its generator) gets and returns ``(batch, 1, 96, frames)``.
        """
        x = self.frontend(padded_batch(waveform, self.min_samples))
        if spec_transform is not None:
            x = spec_transform(x.transpose(1, 2).unsqueeze(1)).squeeze(1).transpose(1, 2)
        return x

    def forward_features(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        """``(batch, time)`` at 44.1 kHz -> unpooled map ``(batch, 512, frames // 8)`` (mean over the mel axis)."""
        return self.backbone.frames(self.features(waveform, spec_transform)).transpose(1, 2)

    def forward_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> frame embeddings ``(batch, frames // 8, 512)``."""
        return self.backbone.frames(self.features(waveform))

    def frame_times(self, n_frames: int) -> torch.Tensor:
        """Centre time (seconds) of each of ``n_frames`` rows of :meth:`forward_frames` (STFT is centred)."""
        pooled = round(self.frame_hop_seconds * SR / HOP_LENGTH)
        i = torch.arange(n_frames, dtype=torch.float64)
        return ((i + 0.5) * pooled - 0.5) * HOP_LENGTH / SR

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map ``(batch, 512, frames')`` -> logits; ``pre_logits=True`` returns the embedding ``(batch, 512)``
        (max over time, the package's pooling)."""
        x = x.amax(dim=-1)
        return x if pre_logits else self.head(x)

    def forward(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        return self.forward_head(self.forward_features(waveform, spec_transform))

    def reset_classifier(self, num_classes: int) -> None:
        if int(num_classes) < 1:
            raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
        self.num_classes = int(num_classes)
        self.head = make_head(self.head_kind, EMBEDDING_SIZE, self.num_classes, self.hidden)

    def backbone_parameters(self):
        return list(self.backbone.parameters())

    def backbone_stages(self) -> list[nn.Module]:
        """Backbone modules from the top block down, for gradual unfreezing."""
        return [getattr(self.backbone, f"conv_block{i}") for i in range(len(POOLS), 0, -1)]

    def get_classifier(self) -> nn.Module:
        """The head replaced by :meth:`reset_classifier`."""
        return self.head


@register_model
def aisfx(*, num_classes: int = 10, in_chans: int = 1, **kw) -> Aisfx:
    """Factory: the aiSFX network with a ``num_classes`` head (weights: ``create_model("aisfx", pretrained=True)``)."""
    if in_chans != 1:
        raise ParameterError(f"in_chans={in_chans!r}: the aiSFX backbone takes mono input (in_chans=1)")
    return Aisfx(num_classes=num_classes, **kw)
