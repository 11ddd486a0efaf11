"""In-graph resampling: windowed-sinc (Kaiser) polyphase filter as one strided ``conv1d``.

For offline resampling of files use ``roomtone.audio.resample_array`` (soxr). This layer runs inside a
model (GPU, autograd, ONNX export). Output length is ``ceil(time * target_sr / orig_sr)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roomtone.errors import ParameterError
from roomtone.features import functional as Fn
from roomtone.features.filters import check_positive_int


def sinc_kernel(*, orig: int, new: int, zeros: int = 24, rolloff: float = 0.945, beta: float = 14.77) -> tuple[np.ndarray, int]:
    """Polyphase windowed-sinc kernels for ``orig -> new`` (reduced by their gcd).

    Output sample ``m = new * q + j`` is ``sum_i x[orig * q + i] * h_j[i]`` where ``h_j[i] =
    (c / orig) sinc(c (j/new - i/orig)) w(...)``, ``c = min(orig, new) * rolloff`` and ``w`` a Kaiser
    window over ``zeros`` zero crossings. Returns ``(kernels (new, width), left)``: ``kernels[j, k]``
    multiplies ``x[orig * q + k - left]``.
    """
    c = min(orig, new) * rolloff
    half = int(math.ceil(zeros * orig / c))  # input samples each side
    left = half
    width = 2 * half + orig + 1
    i = np.arange(width, dtype=np.float64)[None, :] - left
    j = np.arange(new, dtype=np.float64)[:, None]
    t = j / new - i / orig  # in units of 1/gcd seconds
    x = c * t
    support = zeros / c
    win = np.where(np.abs(t) <= support, np.i0(beta * np.sqrt(np.clip(1 - (t / support) ** 2, 0, 1))) / np.i0(beta), 0)
    h = (c / orig) * np.sinc(x) * win
    return h, left


def resample(x: torch.Tensor, *, kernel: torch.Tensor, orig: int, new: int, left: int) -> torch.Tensor:
    """Apply :func:`sinc_kernel` kernels (``(new, width)`` tensor) to ``x`` ``(..., time)``."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    # ceil divisions written with positive operands (ONNX integer Div truncates toward zero)
    n_out = (shape[-1] * new + orig - 1) // orig
    n_q = (n_out + new - 1) // new
    width = kernel.shape[-1]
    right = max(0, (n_q - 1) * orig + width - left - shape[-1])
    padded = F.pad(flat, (left, right))
    out = F.conv1d(padded, kernel.to(flat.dtype)[:, None, :], stride=orig)  # (N, new, n_q)
    out = out[..., :n_q].transpose(1, 2).reshape(flat.shape[0], -1)[:, :n_out]
    return out.reshape(*shape[:-1], n_out)


class Resample(nn.Module):
    """Resample ``(..., time)`` from ``orig_sr`` to ``target_sr`` Hz inside the graph.

    Args:
        orig_sr, target_sr: rates in Hz (integers; the ratio is reduced by their gcd).
        zeros: sinc zero crossings on each side (filter length); more is sharper and slower.
        rolloff: cutoff as a fraction of the lower Nyquist frequency.
        beta: Kaiser window shape (14.77 gives about -140 dB stopband).

    ``forward(x, lengths=None)`` returns ``(..., ceil(time * target_sr / orig_sr))``, or with lengths
    ``(y, ceil(lengths * target_sr / orig_sr))``.
    """

    def __init__(self, orig_sr: int, target_sr: int, *, zeros: int = 24, rolloff: float = 0.945, beta: float = 14.77):
        super().__init__()
        check_positive_int("orig_sr", orig_sr)
        check_positive_int("target_sr", target_sr)
        check_positive_int("zeros", zeros)
        if not 0 < rolloff <= 1:
            raise ParameterError(f"rolloff={rolloff!r} must be in (0, 1]")
        g = math.gcd(int(orig_sr), int(target_sr))
        self.orig_sr, self.target_sr = int(orig_sr), int(target_sr)
        self.orig, self.new = self.orig_sr // g, self.target_sr // g
        if self.orig * self.new > 1_000_000:
            raise ParameterError(
                f"orig_sr={orig_sr}, target_sr={target_sr}: reduced ratio {self.new}/{self.orig} is too fine for a "
                "polyphase filter; resample offline with roomtone.audio.resample_array"
            )
        h, self.left = sinc_kernel(orig=self.orig, new=self.new, zeros=zeros, rolloff=rolloff, beta=beta)
        self.register_buffer("kernel", torch.as_tensor(h, dtype=torch.get_default_dtype()), persistent=False)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths * self.new + self.orig - 1, self.orig, rounding_mode="floor")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = Fn.check_lengths(lengths, x, axis_size=x.shape[-1], what="samples")
        if self.orig == self.new:
            return x if lengths is None else (x, lengths)
        with Fn.float32_context(x):
            x = Fn.as_float(x)
            if lengths is not None:
                x = x * Fn.valid_mask(lengths, x.shape[-1], x.dim()).to(x.dtype)
            y = resample(x, kernel=self.kernel, orig=self.orig, new=self.new, left=self.left)
        if lengths is None:
            return y
        n = self.output_lengths(lengths)
        return y * Fn.valid_mask(n, y.shape[-1], y.dim()).to(y.dtype), n

    def extra_repr(self) -> str:
        return f"orig_sr={self.orig_sr}, target_sr={self.target_sr}"
