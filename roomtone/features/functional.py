"""Functional core of the feature layers: plain tensor functions, every argument explicit, no state.

Shapes: audio ``(..., time)``; spectrograms ``(..., freq, frames)``. ``lengths`` are valid samples (for
audio) or valid frames (for spectrograms) per example, a LongTensor ``(batch,)`` matching dim 0.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from roomtone.errors import ParameterError

STFT_IMPLS = ("auto", "fft", "conv")


def float32_context(x: torch.Tensor):
    """Turn autocast off (STFT, power and dB must run in float32 to avoid inf/NaN in half precision)."""
    dev = x.device.type
    try:
        enabled = torch.is_autocast_enabled(dev)
    except TypeError:  # torch < 2.4 has no device argument
        enabled = torch.is_autocast_enabled()
    return torch.autocast(dev, enabled=False) if enabled else contextlib.nullcontext()


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16/integer inputs are computed in float32; float32/float64 keep their dtype."""
    if not torch.is_tensor(x):
        raise ParameterError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype in (torch.float32, torch.float64):
        return x
    if x.is_complex():
        raise ParameterError(f"expected a real tensor, got dtype {x.dtype}")
    return x.float()


def check_lengths(lengths: torch.Tensor | None, x: torch.Tensor, *, axis_size: int, what: str) -> torch.Tensor | None:
    """Validate ``lengths`` (LongTensor ``(batch,)`` with ``0 <= lengths <= axis_size``)."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=x.device)
    if x.dim() < 2 or lengths.dim() != 1 or lengths.shape[0] != x.shape[0]:
        raise ParameterError(
            f"lengths has shape {tuple(lengths.shape)}; expected ({x.shape[0] if x.dim() > 1 else '?'},) "
            f"for input of shape {tuple(x.shape)} (batch first, one length per example)"
        )
    if lengths.dtype.is_floating_point or lengths.is_complex():
        raise ParameterError(f"lengths must be integers (valid {what} per example), got dtype {lengths.dtype}")
    if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
        if bool((lengths < 0).any()) or bool((lengths > axis_size).any()):
            raise ParameterError(
                f"lengths={lengths.tolist()} must be in 0..{axis_size} (the padded number of {what})"
            )
    return lengths.long()


def valid_mask(lengths: torch.Tensor, size: int, ndim: int) -> torch.Tensor:
    """Boolean mask ``(batch, 1, ..., size)`` (``ndim`` dims) that is True on valid positions."""
    mask = torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]
    return mask.reshape(mask.shape[0], *([1] * (ndim - 2)), size)


def frame_lengths(lengths: torch.Tensor, *, n_fft: int, hop_length: int, center: bool) -> torch.Tensor:
    """Number of STFT frames that a clip of ``lengths`` samples gives (librosa's frame count)."""
    if center:
        return torch.div(lengths, hop_length, rounding_mode="floor") + 1
    return torch.clamp(torch.div(lengths - n_fft, hop_length, rounding_mode="floor") + 1, min=0)


def pad_signal(x: torch.Tensor, *, n_fft: int, center: bool, pad_mode: str, lengths: torch.Tensor | None) -> torch.Tensor:
    """Pad ``(N, time)`` by ``n_fft // 2`` on each side when ``center``; the tail is padded after the
    *valid* samples of each example so that a padded batch equals one-at-a-time calls."""
    if not center:
        return x
    pad = n_fft // 2
    if pad_mode == "constant":
        return F.pad(x, (pad, pad))
    if pad_mode == "reflect" and lengths is not None:
        n, t = x.shape
        pos = torch.arange(-pad, t + pad, device=x.device)[None, :].expand(n, -1)
        last = (lengths[:, None] - 1).clamp(min=0)
        idx = torch.where(pos < 0, -pos, pos)
        idx = torch.where(idx > last, 2 * last - idx, idx).clamp(0, t - 1)
        return torch.gather(x, 1, idx)
    if pad_mode in ("reflect", "replicate", "circular"):
        return F.pad(x[:, None, :], (pad, pad), mode=pad_mode)[:, 0]
    raise ParameterError(f"pad_mode={pad_mode!r} must be 'constant', 'reflect', 'replicate' or 'circular'")


def dft_kernel(window: np.ndarray, *, n_fft: int, bins: tuple[int, int] | None = None) -> np.ndarray:
    """Windowed real DFT basis ``(2 * n_bins, n_fft)``: rows ``[cos; -sin]`` for bins ``lo..hi``.

    ``kernel @ frame`` gives the real and imaginary parts of ``rfft(window * frame)`` for those bins.
    """
    lo, hi = (0, n_fft // 2 + 1) if bins is None else bins
    k = np.arange(lo, hi, dtype=np.float64)[:, None]
    n = np.arange(n_fft, dtype=np.float64)[None, :]
    ang = 2 * np.pi * ((k * n) % n_fft) / n_fft
    return np.concatenate([np.cos(ang) * window, -np.sin(ang) * window], axis=0)


def stft_power(
    x: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    center: bool = True,
    pad_mode: str = "constant",
    power: float | None = 2.0,
    impl: str = "fft",
    kernel: torch.Tensor | None = None,
    bins: tuple[int, int] | None = None,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """|STFT|**power of ``x`` ``(..., time)`` -> ``(..., n_bins, frames)`` (complex STFT if ``power`` is None).

    ``window`` has length ``n_fft`` (already centred). ``impl="fft"`` uses ``torch.stft``; ``impl="conv"``
    multiplies frames with the precomputed ``kernel`` from :func:`dft_kernel` as a strided ``conv1d``
    (exports to ONNX; no complex numbers). ``bins=(lo, hi)`` keeps only those frequency bins. When
    ``lengths`` (valid samples per example) is given, samples past each length are zeroed first.
    Runs in float32 (or float64) even under autocast.
    """
    with float32_context(x):
        x = as_float(x)
        shape = x.shape
        if lengths is not None:
            x = x * valid_mask(lengths, shape[-1], x.dim()).to(x.dtype)
        flat = x.reshape(-1, shape[-1])
        if lengths is not None and flat.shape[0] != lengths.shape[0]:
            lengths = lengths.repeat_interleave(flat.shape[0] // lengths.shape[0])
        flat = pad_signal(flat, n_fft=n_fft, center=center, pad_mode=pad_mode, lengths=lengths)
        if flat.shape[-1] < n_fft:
            raise ParameterError(
                f"input has {shape[-1]} samples; with center=False it needs at least n_fft={n_fft}"
            )
        if impl == "conv":
            if kernel is None:
                raise ParameterError("impl='conv' needs the DFT kernel (see dft_kernel)")
            out = F.conv1d(flat[:, None, :], kernel.to(flat.dtype)[:, None, :], stride=hop_length)
            k = out.shape[1] // 2
            re, im = out[:, :k], out[:, k:]
            if power is None:
                spec = torch.complex(re, im)
            else:
                spec = torch.square(re).addcmul_(im, im)
                if power != 2.0:
                    spec = spec.pow(power / 2.0)
        elif impl == "fft":
            z = torch.stft(flat, n_fft, hop_length=hop_length, win_length=n_fft, window=window.to(flat.dtype),
                           center=False, return_complex=True)
            if bins is not None:
                z = z[:, bins[0]:bins[1]]
            if power is None:
                spec = z
            else:
                # torch.stft's memory is (N, frames, bins): square in that layout (one fused pass) and
                # hand back a (N, bins, frames) view; the mel matmul then runs as one large GEMM
                zt = z.transpose(-1, -2)
                spec = torch.square(zt.real).addcmul_(zt.imag, zt.imag)
                if power != 2.0:
                    spec = spec.pow(power / 2.0)
                spec = spec.transpose(-1, -2)
        else:
            raise ParameterError(f"stft_impl={impl!r} must be one of {STFT_IMPLS}")
        return spec.reshape(*shape[:-1], spec.shape[-2], spec.shape[-1])


def exporting() -> bool:
    """True while exporting to ONNX (either exporter) or tracing with ``torch.jit.trace``; layers then
    take their FFT-free path (False in eager PyTorch and under torch.compile)."""
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


def symbolic_export() -> bool:
    """True while ``torch.export`` captures the graph with symbolic shapes (the dynamo ONNX exporter):
    choices that depend on the input's length must then be graph ops (``torch.sym_max``), since a Python
    ``if`` is frozen to the example's branch. False in eager mode, TorchScript and the legacy exporter."""
    return bool(getattr(torch.compiler, "is_exporting", lambda: False)())


def resolve_impl(impl: str) -> str:
    """``"auto"`` is ``"fft"`` in eager PyTorch (and torch.compile) and ``"conv"`` while exporting to ONNX
    (either exporter) or tracing with ``torch.jit.trace``."""
    if impl != "auto":
        return impl
    return "conv" if exporting() else "fft"


def mask_frames(spec: torch.Tensor, frame_lengths: torch.Tensor | None, value: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Set frames past ``frame_lengths`` to ``value``; ``spec`` is ``(batch, ..., freq, frames)``."""
    if frame_lengths is None:
        return spec
    mask = valid_mask(frame_lengths, spec.shape[-1], spec.dim())
    if torch.is_tensor(value):
        return torch.where(mask, spec, value.to(spec.dtype))
    return spec.masked_fill(~mask, value)


def power_to_db(
    spec: torch.Tensor,
    *,
    ref: float | str = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    multiplier: float = 10.0,
    frame_lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """``multiplier * log10(max(amin, S) / max(amin, ref))``, floored at ``max - top_db`` **per example**.

    ``spec`` ``(..., freq, frames)``; the maximum for ``top_db`` (and for ``ref="max"``) is taken over
    each spectrogram's own ``(freq, frames)`` -- never over the batch -- and only over valid frames when
    ``frame_lengths`` is given. Frames past the valid length are set to the example's floor. Same numbers
    as ``librosa.power_to_db`` (``multiplier=20`` for amplitudes) on each example.
    """
    with float32_context(spec):
        spec = as_float(spec)
        mask = None if frame_lengths is None else valid_mask(frame_lengths, spec.shape[-1], spec.dim())
        if ref == "max":
            valid = spec if mask is None else spec.masked_fill(~mask, 0.0)
            ref_db = multiplier * torch.log10(torch.clamp(valid.amax(dim=(-2, -1), keepdim=True), min=amin))
        else:
            ref_db = multiplier * float(np.log10(max(amin, float(ref))))
        log_spec = multiplier * torch.log10(torch.clamp(spec, min=amin))
        if torch.is_tensor(ref_db) or ref_db != 0.0:
            log_spec = log_spec - ref_db
        if top_db is not None:
            valid = log_spec if mask is None else log_spec.masked_fill(~mask, float("-inf"))
            floor = valid.amax(dim=(-2, -1), keepdim=True) - top_db
            log_spec = torch.maximum(log_spec, floor)
        else:
            floor = multiplier * float(np.log10(amin)) - ref_db
        if mask is not None:
            log_spec = torch.where(mask, log_spec, floor)
        return log_spec


def delta(spec: torch.Tensor, *, weights: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Savitzky-Golay derivative along frames, ``librosa.feature.delta(mode="interp")`` semantics.

    ``spec`` ``(..., freq, frames)``; ``weights`` from :func:`roomtone.features.filters.delta_weights`.
    Interior frames use the filter; the first/last ``width // 2`` frames repeat the value of the first/last
    full window (exactly what "interp" gives when polyorder == order). Needs ``frames >= width``
    (per example, when ``frame_lengths`` is given); frames past the valid length are zero.
    """
    width = weights.shape[-1]
    half = width // 2
    t = spec.shape[-1]
    shape = spec.shape
    flat = spec.reshape(-1, 1, t)
    if t < width:
        raise ParameterError(f"delta needs at least width={width} frames; got {t} (lower width)")
    inner = F.conv1d(flat, weights.to(flat.dtype).reshape(1, 1, width)).reshape(*shape[:-1], t - 2 * half)
    pos = torch.arange(t, device=spec.device)
    if frame_lengths is None:
        idx = pos.clamp(half, t - 1 - half) - half
        return inner.index_select(-1, idx)
    if not torch.jit.is_tracing() and bool((frame_lengths < width).any()):
        raise ParameterError(
            f"delta needs at least width={width} valid frames per example; got frame lengths "
            f"{frame_lengths.tolist()}"
        )
    hi = (frame_lengths - 1 - half).reshape(-1, *([1] * (spec.dim() - 1)))
    idx = torch.minimum(pos.clamp(min=half).expand(*shape[:-1], t), hi.expand(*shape[:-1], t)) - half
    out = torch.gather(inner, -1, idx)
    return mask_frames(out, frame_lengths)
