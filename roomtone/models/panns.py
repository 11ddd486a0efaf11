"""PANNs-compatible CNN6, CNN10 and CNN14 (Kong et al., 2020), loadable from the published checkpoints.

The architectures and the front end are those of the published AudioSet taggers:
32 kHz mono input, STFT window 1024 with hop 320 (Hann, centred, reflect padding), 64 Slaney mel
bands over 50-14000 Hz, log power ``10*log10(max(x, 1e-10))`` (ref 1, no ``top_db``), then a
BatchNorm ``bn0`` over the mel bins. Module names follow the published checkpoint keys
(``bn0.*``, ``conv_block1.conv1.weight``, ``fc1.*``, ``fc_audioset.*``), so
``torch.load(path, weights_only=True)["model"]`` loads through :func:`load_panns_state_dict`.
The published front-end tensors (``spectrogram_extractor.stft.conv_real.weight``,
``logmel_extractor.melW``, ...) are checked for shape and then ignored: roomtone builds the
same front end itself (``model.frontend``).

Differences from the published code, on purpose: ``forward`` returns logits (no sigmoid; use
``torch.sigmoid`` for AudioSet tag probabilities), and SpecAugment/mixup are not inside the model
(roomtone's training loop adds augmentation with an explicit generator).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from roomtone.errors import CheckpointError, ParameterError
from roomtone.features.functional import symbolic_export
from roomtone.models.registry import register_model

SR = 32000
N_FFT = 1024
HOP_LENGTH = 320
N_MELS = 64
FMIN = 50.0
FMAX = 14000.0
AUDIOSET_CLASSES = 527

# name -> (block kind, channels per block, pool size per block, embedding size)
ARCHS = {
    "cnn6": ("5x5", (64, 128, 256, 512), (2, 2, 2, 2), 512),
    "cnn10": ("3x3", (64, 128, 256, 512), (2, 2, 2, 2), 512),
    "cnn14": ("3x3", (64, 128, 256, 512, 1024, 2048), (2, 2, 2, 2, 2, 1), 2048),
}

# Front-end tensors of the published checkpoints: name -> expected shape.
PUBLISHED_FRONTEND_KEYS = {
    "spectrogram_extractor.stft.conv_real.weight": (N_FFT // 2 + 1, 1, N_FFT),
    "spectrogram_extractor.stft.conv_imag.weight": (N_FFT // 2 + 1, 1, N_FFT),
    "logmel_extractor.melW": (N_FFT // 2 + 1, N_MELS),
}


def panns_frontend() -> nn.Module:
    """The PANNs log-mel front end (``roomtone.features`` preset ``"panns"``): ``(batch, time)`` at 32 kHz ->
    ``(batch, 64, frames)`` in dB, with the settings of this module's constants."""
    from roomtone.features.presets import frontend

    layer = frontend("panns")
    assert (layer.sr, layer.n_fft, layer.hop_length, layer.n_mels) == (SR, N_FFT, HOP_LENGTH, N_MELS)
    return layer


def _check_head(head: str, hidden: int) -> tuple[str, int]:
    if head not in ("linear", "mlp"):
        raise ParameterError(f"head={head!r} must be 'linear' or 'mlp'")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ParameterError(f"hidden={hidden!r} must be a positive integer")
    return head, hidden


def make_head(kind: str, in_features: int, num_classes: int, hidden: int = 256) -> nn.Module:
    """Classifier on an embedding: ``"linear"`` or ``"mlp"`` (Linear-ReLU-Dropout(0.2)-Linear, first layer first)."""
    kind, hidden = _check_head(kind, hidden)
    if kind == "linear":
        layers = [nn.Linear(in_features, num_classes)]
        head = layers[0]
    else:
        layers = [nn.Linear(in_features, hidden), nn.Linear(hidden, num_classes)]
        head = nn.Sequential(layers[0], nn.ReLU(), nn.Dropout(0.2), layers[1])
    for lin in layers:
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
    return head



def padded_batch(waveform: torch.Tensor, min_samples: int) -> torch.Tensor:
    """A ``(batch, time)`` waveform zero padded at the end to at least ``min_samples`` (the network's
    shortest input); any other shape is a ParameterError.

    While exporting, ``time`` is symbolic: the graph always pads by ``max(0, min_samples - time)``
    (a Python ``if`` would be frozen to the example's branch, and short input would not be padded).
    """
    if waveform.dim() != 2:
        raise ParameterError(f"waveform must be (batch, time); got shape {tuple(waveform.shape)}")
    if not torch.jit.is_scripting() and symbolic_export():
        return F.pad(waveform, (0, torch.sym_max(min_samples - waveform.shape[-1], 0)))
    if waveform.shape[-1] < min_samples:
        waveform = F.pad(waveform, (0, min_samples - waveform.shape[-1]))
    return waveform


class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then average (PANNs ``ConvBlock``) or max pooling (aiSFX's block).

    Module names ``conv1, bn1, conv2, bn2`` are the published checkpoint keys of both networks.
    """

    def __init__(self, in_channels: int, out_channels: int, *, pool_type: str = "avg"):
        super().__init__()
        self.pool = F.avg_pool2d if pool_type == "avg" else F.max_pool2d
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.pool(x, kernel_size=pool) if pool > 1 else x


class ConvBlock5x5(nn.Module):
    """One 5x5 conv + BN + ReLU, then average pooling (PANNs ``ConvBlock5x5``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.avg_pool2d(x, kernel_size=pool) if pool > 1 else x


class PANNs(nn.Module):
    """A PANNs CNN (``arch`` in ``cnn6``, ``cnn10``, ``cnn14``) with its front end built in.

    ``forward(waveform (batch, time) at 32 kHz) -> logits (batch, num_classes)``.
    ``forward_features`` gives the unpooled map ``(batch, channels, frames')`` (mel axis averaged);
    ``forward_head(map, pre_logits=True)`` the clip embedding ``(batch, embedding_size)`` (ReLU of ``fc1``
    over max + mean in time); ``forward_frames`` the frame embeddings ``(batch, frames', embedding_size)``,
    one every ``frame_hop_seconds``.
    """

    sr = SR

    def __init__(self, *, arch: str = "cnn14", num_classes: int = AUDIOSET_CLASSES, dropout: bool = True,
                 head: str = "linear", hidden: int = 256):
        super().__init__()
        if arch not in ARCHS:
            raise ParameterError(f"arch={arch!r} is not a PANNs architecture; allowed: {sorted(ARCHS)}")
        if int(num_classes) < 1:
            raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
        kind, channels, pools, emb = ARCHS[arch]
        self.arch = arch
        self.pools = pools
        self.dropout = dropout
        self.embedding_size = emb
        self.num_classes = int(num_classes)
        self.frontend = panns_frontend()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        block = ConvBlock5x5 if kind == "5x5" else ConvBlock
        ins = (1, *channels[:-1])
        for i, (cin, cout) in enumerate(zip(ins, channels, strict=True), start=1):
            self.add_module(f"conv_block{i}", block(cin, cout))
        self.fc1 = nn.Linear(channels[-1], emb)
        self.head_kind, self.hidden = _check_head(head, hidden)
        self.fc_audioset = make_head(self.head_kind, emb, self.num_classes, self.hidden)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def min_samples(self) -> int:
        """Shortest input (samples) that survives all pooling stages; shorter input is zero padded."""
        frames = 1
        for p in self.pools:
            frames *= p
        return (frames - 1) * HOP_LENGTH + 1

    @property
    def frame_hop_seconds(self) -> float:
        """Time between two rows of :meth:`forward_frames`, in seconds."""
        total = 1
        for p in self.pools:
            total *= p
        return total * HOP_LENGTH / SR

    def logmel(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        """``(batch, time)`` -> normalized log-mel ``(batch, 1, frames, 64)`` (after ``bn0``).

        ``spec_transform`` (e.g. SpecAugment with its generator) gets and returns ``(batch, 1, 64, frames)``.
        """
        x = self.frontend(padded_batch(waveform, self.min_samples))  # (batch, mels, frames)
        x = self.bn0(x.unsqueeze(-1)).squeeze(-1)  # BN over the mel bins: (batch, mels, frames)
        if spec_transform is not None:
            x = spec_transform(x.unsqueeze(1)).squeeze(1)
        return x.transpose(1, 2).unsqueeze(1)  # (batch, 1, frames, mels)

    def forward_features(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        """``(batch, time)`` at 32 kHz -> unpooled map ``(batch, channels, frames')`` (mean over the mel axis)."""
        x = self.logmel(waveform, spec_transform)
        for i, pool in enumerate(self.pools, start=1):
            x = getattr(self, f"conv_block{i}")(x, pool)
            x = F.dropout(x, p=0.2, training=self.training and self.dropout)
        return x.mean(dim=3)  # (batch, channels, frames')

    def forward_frames(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> frame embeddings ``(batch, frames', embedding_size)`` (PANNs' smoothing: max+avg over 3 frames)."""
        x = self.forward_features(waveform)
        x = F.max_pool1d(x, 3, stride=1, padding=1) + F.avg_pool1d(x, 3, stride=1, padding=1)
        return F.relu(self.fc1(x.transpose(1, 2)))

    def frame_times(self, n_frames: int) -> torch.Tensor:
        """Centre time (seconds) of each of ``n_frames`` rows of :meth:`forward_frames` (STFT is centred)."""
        pooled = round(self.frame_hop_seconds * SR / HOP_LENGTH)
        i = torch.arange(n_frames, dtype=torch.float64)
        return ((i + 0.5) * pooled - 0.5) * HOP_LENGTH / SR

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map ``(batch, channels, frames')`` -> logits ``(batch, num_classes)``; ``pre_logits=True`` returns
        the clip embedding ``(batch, embedding_size)``."""
        x = x.amax(dim=2) + x.mean(dim=2)
        x = F.dropout(x, p=0.5, training=self.training and self.dropout)
        x = F.relu(self.fc1(x))
        if pre_logits:
            return x
        return self.fc_audioset(F.dropout(x, p=0.5, training=self.training and self.dropout))

    def forward(self, waveform: torch.Tensor, spec_transform=None) -> torch.Tensor:
        return self.forward_head(self.forward_features(waveform, spec_transform))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc_audioset`` with a fresh ``Linear(embedding_size, num_classes)``."""
        if int(num_classes) < 1:
            raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
        self.num_classes = int(num_classes)
        self.fc_audioset = make_head(self.head_kind, self.embedding_size, self.num_classes, self.hidden)

    def backbone_parameters(self):
        """Parameters below the classifier (front-end BN, conv blocks, ``fc1``)."""
        return [p for n, p in self.named_parameters() if not n.startswith("fc_audioset.")]

    def backbone_stages(self) -> list[nn.Module]:
        """Backbone modules from the top down (``fc1``, last conv block, ..., first block, ``bn0``), for gradual unfreezing."""
        blocks = [getattr(self, f"conv_block{i}") for i in range(len(self.pools), 0, -1)]
        return [self.fc1, *blocks, self.bn0]

    def get_classifier(self) -> nn.Module:
        """The head replaced by :meth:`reset_classifier` (``fc_audioset``)."""
        return self.fc_audioset


def _model_keys(model: PANNs) -> list[str]:
    return [k for k in model.state_dict() if not k.startswith("frontend.")]


def load_panns_state_dict(model: PANNs, state_dict: Mapping[str, torch.Tensor], *, classifier: bool = True) -> dict:
    """Load a state dict in the published PANNs key layout into ``model``, strictly.

    Published front-end keys are checked for shape and ignored (the front end is built in).
    ``classifier=False`` skips ``fc_audioset.*`` (for transfer to a new label set).
    Returns a report ``{"loaded": [...], "ignored": [...], "skipped": [...]}``.
    Raises :class:`CheckpointError` listing every unknown, missing or mis-shaped key.
    """
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"a PANNs state dict must be a mapping of tensors; got {type(state_dict).__name__}")
    own = model.state_dict()
    expected = [k for k in _model_keys(model) if classifier or not k.startswith("fc_audioset.")]
    skipped = [k for k in state_dict if not classifier and k.startswith("fc_audioset.")]
    ignored, unknown, bad_shape = [], [], []
    for key, value in state_dict.items():
        if key in skipped:
            continue
        if key in PUBLISHED_FRONTEND_KEYS:
            if tuple(value.shape) != PUBLISHED_FRONTEND_KEYS[key]:
                bad_shape.append(f"{key}: {tuple(value.shape)} (the built-in front end is {PUBLISHED_FRONTEND_KEYS[key]})")
            ignored.append(key)
        elif key.startswith("frontend.") and key in own:
            ignored.append(key)
        elif key not in expected:
            unknown.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            bad_shape.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
    missing = [k for k in expected if k not in state_dict]
    if unknown or missing or bad_shape:
        parts = [f"checkpoint does not match PANNs {model.arch}"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown keys ({len(unknown)}): {', '.join(unknown)}")
        if bad_shape:
            parts.append(f"shape mismatches ({len(bad_shape)}): {'; '.join(bad_shape)}")
        raise CheckpointError("; ".join(parts))
    new = dict(own)
    for key in expected:
        new[key] = state_dict[key].to(dtype=own[key].dtype)
    model.load_state_dict(new, strict=True)
    return {"loaded": expected, "ignored": ignored, "skipped": skipped}


def load_panns_checkpoint(path: str | Path, *, arch: str, num_classes: int | None = None) -> tuple[PANNs, dict]:
    """Build ``arch`` and load a published-layout checkpoint file (``torch.load(..., weights_only=True)["model"]``).

    ``num_classes=None`` keeps the AudioSet classifier (527); another value loads the backbone
    and gives a fresh classifier. Returns ``(model in eval mode, report)``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"cannot load {str(path)!r} with weights_only=True: {exc}") from exc
    state = obj.get("model", obj) if isinstance(obj, Mapping) else obj
    keep_head = num_classes is None or num_classes == AUDIOSET_CLASSES
    model = PANNs(arch=arch, num_classes=AUDIOSET_CLASSES if keep_head else num_classes)
    report = load_panns_state_dict(model, state, classifier=keep_head)
    return model.eval(), report


def _check_in_chans(in_chans: int) -> None:
    if in_chans != 1:
        raise ParameterError(f"in_chans={in_chans!r}: pre-trained audio backbones take mono input (in_chans=1)")


@register_model(name="panns-cnn6")
def cnn6(*, num_classes: int = AUDIOSET_CLASSES, in_chans: int = 1, **kw) -> PANNs:
    """PANNs CNN6 (4 blocks of one 5x5 conv, 512-d embedding), 32 kHz input."""
    _check_in_chans(in_chans)
    return PANNs(arch="cnn6", num_classes=num_classes, **kw)


@register_model(name="panns-cnn10")
def cnn10(*, num_classes: int = AUDIOSET_CLASSES, in_chans: int = 1, **kw) -> PANNs:
    """PANNs CNN10 (4 blocks of two 3x3 convs, 512-d embedding), 32 kHz input."""
    _check_in_chans(in_chans)
    return PANNs(arch="cnn10", num_classes=num_classes, **kw)


@register_model(name="panns-cnn14")
def cnn14(*, num_classes: int = AUDIOSET_CLASSES, in_chans: int = 1, **kw) -> PANNs:
    """PANNs CNN14 (6 blocks of two 3x3 convs, 2048-d embedding), 32 kHz input."""
    _check_in_chans(in_chans)
    return PANNs(arch="cnn14", num_classes=num_classes, **kw)
