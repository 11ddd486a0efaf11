"""Colored noise by spectral shaping of white Gaussian noise (explicit generator, no global RNG).

The power spectral density follows ``f ** exponent``: white 0, pink -1, brown (red) -2, blue +1,
violet +2. The DC bin is set to zero (pink and brown diverge there), and each example is scaled to
unit RMS, so the level is set later (e.g. by :func:`roomtone.prepare.noise.mix_at_snr`).
"""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError

COLORS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}


def colored_noise(
    *,
    length: int,
    color: str = "white",
    batch: int | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unit-RMS colored noise of shape ``(batch, length)`` (``(length,)`` when ``batch`` is None).

    Args:
        length: samples per example (>= 1; a 1-sample colored noise is 0: only DC, which is removed).
        color: one of ``white``, ``pink``, ``brown``, ``blue``, ``violet`` (PSD ``f ** {0,-1,-2,1,2}``).
        generator: the random source; or give ``seed`` to use a fresh ``torch.Generator`` seeded with
            it. One of the two is required: there is no global-RNG fallback.
        device: where the output lives (the white noise is drawn on the generator's device, then moved).
    """
    if color not in COLORS:
        raise ParameterError(f"color={color!r} is not known; choose one of {sorted(COLORS)}")
    if not isinstance(length, int) or length < 1:
        raise ParameterError(f"length={length!r} must be a positive integer (samples)")
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise ParameterError(f"batch={batch!r} must be a positive integer or None")
    if generator is None:
        if seed is None:
            raise ParameterError("colored_noise needs generator= (a torch.Generator) or seed= (an int)")
        generator = torch.Generator().manual_seed(int(seed))
    b = 1 if batch is None else batch
    white = torch.randn(b, length, generator=generator, device=generator.device, dtype=torch.float32)
    white = white.to(device or generator.device)
    exponent = COLORS[color]
    if exponent != 0.0:
        spec = torch.fft.rfft(white, dim=-1)
        f = torch.fft.rfftfreq(length, device=white.device)
        gain = torch.zeros_like(f)
        gain[1:] = f[1:] ** (exponent / 2.0)
        white = torch.fft.irfft(spec * gain, n=length, dim=-1)
    white = white - white.mean(-1, keepdim=True) if exponent < 0 else white
    out = white / white.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
    out = out.to(dtype)
    return out[0] if batch is None else out
