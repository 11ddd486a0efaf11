"""Receptive field of a 2-D CNN on a spectrogram, in frames/bins and in seconds/Hz through the front end.

Functional core: :func:`stack_receptive_field` walks a list of ``(kernel, stride, dilation)`` per axis with
the usual recurrence ``r += (k - 1) * d * j``; ``j *= s`` (``r`` the field, ``j`` the jump, both in input
units). :func:`receptive_field` collects the conv/pool layers of a model (in registration order, which is
the execution order of a sequential stack) and converts through the front end:

* time: a field of ``r`` frames spans ``(r - 1) * hop_length + win_length`` samples; the jump is
  ``j * hop_length`` samples.
* frequency: mel band ``i`` spans band edges ``[i, i + 2]`` of ``mel_frequencies(n_mels + 2, fmin, fmax)``,
  so ``b`` bins starting at bin ``i`` span ``edges[i] .. edges[i + b + 1]`` Hz; we report the span at the
  bottom and at the top of the spectrum (mel bands widen upwards).

:func:`design` proposes a depth and time pooling for a target pattern length (VGG or EffNet stages), with
the FLOPs of each option on request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from roomtone.errors import ParameterError


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the last conv/pool layer. Frames/bins are input (spectrogram) units."""

    frames: int
    bins: int
    jump_frames: int
    jump_bins: int
    seconds: float | None = None
    jump_seconds: float | None = None
    hz_low: tuple[float, float] | None = None   # span of the field at the bottom of the spectrum
    hz_high: tuple[float, float] | None = None  # span of the field at the top of the spectrum
    n_layers: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def stack_receptive_field(layers) -> tuple[tuple[int, int], tuple[int, int]]:
    """Field and jump of a stack: ``layers`` = iterable of ``(kernel, stride, dilation)``, each a
    ``(freq, time)`` pair. Returns ``((bins, frames), (jump_bins, jump_frames))``."""
    r, j = [1, 1], [1, 1]
    for kernel, stride, dilation in layers:
        for a in range(2):
            r[a] += (int(kernel[a]) - 1) * int(dilation[a]) * j[a]
            j[a] *= int(stride[a])
    return (r[0], r[1]), (j[0], j[1])


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def model_layers(model: nn.Module) -> list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """``(kernel, stride, dilation)`` of every Conv2d / MaxPool2d / AvgPool2d, in registration order."""
    out = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            out.append((_pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)))
        elif isinstance(m, nn.MaxPool2d):
            stride = m.stride if m.stride is not None else m.kernel_size
            out.append((_pair(m.kernel_size), _pair(stride), _pair(m.dilation)))
        elif isinstance(m, nn.AvgPool2d):
            stride = m.stride if m.stride is not None else m.kernel_size
            out.append((_pair(m.kernel_size), _pair(stride), (1, 1)))
    return out


def _mel_edges(*, n_mels: int, fmin: float, fmax: float, htk: bool = False):
    from roomtone.features import mel_frequencies

    return [float(f) for f in mel_frequencies(n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)]


def frames_to_seconds(frames: int, *, sr: float, hop_length: int, win_length: int) -> float:
    """Seconds spanned by ``frames`` consecutive STFT frames: ``((frames - 1) * hop + win) / sr``."""
    return ((frames - 1) * hop_length + win_length) / sr


def receptive_field(model: nn.Module, frontend: nn.Module | None = None) -> ReceptiveField:
    """Receptive field of ``model``'s conv/pool stack, converted to seconds and Hz through ``frontend``
    (default ``model.frontend``; pass ``None`` with a model without one to get frames/bins only).

    The front end needs attributes ``sr, hop_length, win_length`` (and ``n_mels, fmin, fmax`` for Hz).
    """
    if frontend is None:
        frontend = getattr(model, "frontend", None)
    layers = model_layers(model.features if hasattr(model, "features") else model)
    (bins, frames), (jb, jf) = stack_receptive_field(layers)
    if frontend is None:
        return ReceptiveField(frames, bins, jf, jb, n_layers=len(layers))
    sr = float(frontend.sr)
    hop = int(frontend.hop_length)
    win = int(getattr(frontend, "win_length", None) or frontend.n_fft)
    seconds = frames_to_seconds(frames, sr=sr, hop_length=hop, win_length=win)
    hz_low = hz_high = None
    n_mels = getattr(frontend, "n_mels", None)
    if n_mels:
        fmin = float(getattr(frontend, "fmin", 0.0) or 0.0)
        fmax = getattr(frontend, "fmax", None)
        fmax = sr / 2 if fmax is None else float(fmax)
        edges = _mel_edges(n_mels=int(n_mels) + 2, fmin=fmin, fmax=fmax, htk=bool(getattr(frontend, "htk", False)))
        b = min(bins, int(n_mels))
        hz_low = (edges[0], edges[b + 1])
        hz_high = (edges[int(n_mels) - b], edges[int(n_mels) + 1])
    return ReceptiveField(frames, bins, jf, jb, seconds=seconds, jump_seconds=jf * hop / sr,
                          hz_low=hz_low, hz_high=hz_high, n_layers=len(layers))


def vgg_layers(blocks: int, *, pool_time: int = 2, pool_freq: int = 2):
    """Layer list of ``blocks`` VGG blocks (two 3x3 convs + pooling)."""
    out = []
    for _ in range(blocks):
        out += [((3, 3), (1, 1), (1, 1))] * 2
        out.append(((pool_freq, pool_time), (pool_freq, pool_time), (1, 1)))
    return out


def check_receptive_field(rf: ReceptiveField, *, target_duration: float, low: float = 0.5,
                          high: float = 4.0) -> str | None:
    """A warning when the field is far smaller (< ``low`` x) or larger (> ``high`` x) than the target."""
    if rf.seconds is None:
        return None
    if rf.seconds < low * target_duration:
        return (f"receptive field {rf.seconds:.3f} s is far smaller than the target pattern ({target_duration:g} s): "
                f"add blocks or pool more in time")
    if rf.seconds > high * target_duration:
        return (f"receptive field {rf.seconds:.3f} s is far larger than the target pattern ({target_duration:g} s): "
                f"fewer blocks or less time pooling keep short events sharp")
    return None


FAMILIES = ("vgg", "effnet")


def family_layers(family: str, blocks: int, *, pool_time: int = 2, pool_freq: int = 2):
    """Layer list of ``blocks`` stages of ``family``: ``vgg`` blocks (:func:`vgg_layers`) or ``effnet``
    stages of one separable block each (:func:`roomtone.models.effnet.effnet_layers`)."""
    if family == "vgg":
        return vgg_layers(blocks, pool_time=pool_time, pool_freq=pool_freq)
    if family == "effnet":
        from roomtone.models.effnet import effnet_layers

        return effnet_layers([1] * blocks, pools=[(pool_freq, pool_time)] * blocks)
    raise ParameterError(f"family={family!r} must be one of {list(FAMILIES)}")


def option_model(family: str, pool: list, *, num_classes: int = 2, **frontend) -> nn.Module:
    """The model a design option stands for: ``vgg`` with channels 16, 32, 64, ... per block, or
    ``effnet_s``-like stages (16, 32, 64, ... wide, one separable block each), with ``pool`` per stage."""
    from roomtone.models.registry import create_model

    channels = [16 * 2 ** i for i in range(len(pool))]
    if family == "effnet":
        return create_model("effnet_s", num_classes=num_classes, channels=channels, depth=1, pool=pool, **frontend)
    return create_model("vgg", num_classes=num_classes, channels=channels, pool=pool, **frontend)


def design(*, target_duration: float, sr: int, hop_length: int, win_length: int | None = None,
           n_fft: int | None = None, n_mels: int = 64, max_blocks: int = 8,
           pool_times: tuple[int, ...] = (2, 3, 4), family: str = "vgg", flops: bool = False) -> dict:
    """Propose depth and time pooling so the receptive field covers ``target_duration`` seconds.

    Returns ``{"recommended": {...}, "options": [...]}``; each option has ``blocks``, ``pool_time``,
    ``frames``, ``seconds``, ``jump_seconds``, ``min_frames`` (input frames the pooling needs) and
    ``covers``. The recommendation is the shallowest stack (pool 2 preferred) whose field covers the
    target, with frequency pooling 2 while ``n_mels`` allows it.
    ``family``: ``vgg`` (two 3x3 convs + pooling per block) or ``effnet`` (strided stem, then pooling and
    one depthwise-separable block per stage). ``flops=True`` adds ``flops_per_second`` (forward FLOPs per
    second of audio, :func:`roomtone.models.compute.compute_profile`) of the model each option stands for
    (:func:`option_model`, built and run once on a clip of at least 1 s that the pooling takes; None for
    options of over 6 stages or 1024 input frames).
    """
    if not (isinstance(target_duration, (int, float)) and target_duration > 0):
        raise ParameterError(f"target_duration={target_duration!r} must be a positive number of seconds")
    if family not in FAMILIES:
        raise ParameterError(f"family={family!r} must be one of {list(FAMILIES)}")
    for name, v in (("sr", sr), ("hop_length", hop_length), ("max_blocks", max_blocks)):
        if not isinstance(v, int) or v < 1:
            raise ParameterError(f"{name}={v!r} must be a positive integer")
    win = win_length or n_fft or 4 * hop_length
    options = []
    for pt in pool_times:
        for blocks in range(1, max_blocks + 1):
            (b, f), (jb, jf) = stack_receptive_field(family_layers(family, blocks, pool_time=pt))
            secs = frames_to_seconds(f, sr=sr, hop_length=hop_length, win_length=win)
            options.append({"blocks": blocks, "pool_time": pt, "frames": f, "seconds": round(secs, 4),
                            "jump_seconds": round(jf * hop_length / sr, 4), "min_frames": pt ** blocks,
                            "freq_bins": b, "covers": secs >= target_duration})
    rec = None
    max_freq_blocks = max(0, n_mels.bit_length() - 3)  # keep >= 4 mel bins after pooling
    if flops:
        from roomtone.models.compute import compute_profile

        fe = {"sr": sr, "hop_length": hop_length, "n_fft": n_fft or win, "win_length": win_length, "n_mels": n_mels}
        for o in options:  # on a clip long enough for the pooling; none for stacks of over 6 stages / 1024 frames
            o["flops_per_second"] = None
            if o["blocks"] <= 6 and o["min_frames"] <= 1024:
                pool = [[2 if i < max_freq_blocks else 1, o["pool_time"]] for i in range(o["blocks"])]
                secs = max(1.0, frames_to_seconds(o["min_frames"], sr=sr, hop_length=hop_length, win_length=win))
                prof = compute_profile(option_model(family, pool, **fe), seconds=secs)
                o["flops_per_second"] = prof["flops_per_second"]
    for pt in pool_times:
        for o in options:
            if o["pool_time"] == pt and o["covers"] and o["blocks"] <= max(4, max_blocks // 2 + 2):
                rec = dict(o)
                break
        if rec:
            break
    if rec is None:
        rec = dict(max(options, key=lambda o: o["seconds"]))
        rec["note"] = "no option covers the target; use the deepest, or a longer hop"
    rec["pool"] = [[2 if i < max_freq_blocks else 1, rec["pool_time"]] for i in range(rec["blocks"])]
    rec["target_duration"] = target_duration
    return {"recommended": rec, "options": options, "sr": sr, "hop_length": hop_length, "win_length": win,
            "family": family}
