"""Rooms: FFT convolution with room impulse responses (RIRs), RIR banks (measured or simulated),
and the acoustic measures of each RIR (RT60 by Schroeder backward integration, direct-to-reverberant ratio).

Alignment: the output of :func:`convolve_rir` is time-aligned with the dry input: the RIR's
direct-path peak (its largest absolute sample, or a given index) lands on t=0, and the output has the
input's length. A delta RIR therefore returns the input unchanged.

Energy normalisation (``normalize``):

* ``"energy"`` (default): the RIR is scaled to unit L2 norm, so for a broadband input the output has
  about the input's power (a reverberant room does not make the clip louder or quieter on average);
* ``"direct"``: the direct-path peak is scaled to 1, so the dry part keeps its level and reverberation adds on top;
* ``"none"``: the RIR is used as given.
"""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.noise import as_batch

NORMALIZE = ("energy", "direct", "none")


def __getattr__(name: str):
    """``RoomBank`` lives in :mod:`roomtone.prepare.roombank`; importable from here too."""
    if name == "RoomBank":
        from roomtone.prepare.roombank import RoomBank

        return RoomBank
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT sizes)."""
    best = 1 << (n - 1).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


CPU_FAST_PATH = True  # set False to send CPU tensors through torch.fft too (tests compare both paths)


def _scipy_path(*tensors: torch.Tensor) -> bool:
    """CPU tensors without autograd go through scipy.fft/NumPy (faster than torch's CPU FFT and complex
    multiply here, zero-copy); others (CUDA, autograd) through torch: the same numbers within float error."""
    return CPU_FAST_PATH and all(t.device.type == "cpu" and not t.requires_grad for t in tensors)


def rfft(x: torch.Tensor, n: int) -> torch.Tensor:
    """Real FFT of ``x`` ``(..., time)`` zero padded (or cropped) to ``n``."""
    if _scipy_path(x) and x.dtype == torch.float32:
        import scipy.fft

        return torch.from_numpy(scipy.fft.rfft(x.detach().numpy(), n=n, axis=-1, workers=torch.get_num_threads()))
    return torch.fft.rfft(x, n=n)


def fft_filter(x: torch.Tensor, spec: torch.Tensor, *, n: int, index: list[int] | torch.Tensor | None = None
               ) -> torch.Tensor:
    """Circular convolution (size ``n``) of the zero-padded rows of ``x`` ``(batch, time)`` with spectra.

    ``spec``: ``(n // 2 + 1,)`` or ``(1 or batch, n // 2 + 1)`` complex spectra or real magnitudes; with
    ``index``, row ``index[i]`` of ``spec`` ``(entries, n // 2 + 1)`` filters example ``i`` (a bank's
    spectra, not gathered into a batch-sized copy; a negative entry leaves that example unfiltered).
    Returns ``(batch, n)`` float32; with ``n >= time + filter length - 1`` this is the full linear convolution.
    """
    if _scipy_path(x, spec) and spec.dtype in (torch.complex64, torch.float32):
        import numpy as np
        import scipy.fft

        workers = torch.get_num_threads()
        X = scipy.fft.rfft(x.float().numpy(), n=n, axis=-1, workers=workers)
        s = spec.numpy()
        if index is None:
            np.multiply(X, s, out=X)
        else:  # row by row, in place: no (batch, n // 2 + 1) gather of the bank's spectra
            for i, k in enumerate(torch.as_tensor(index).tolist()):
                if k >= 0:
                    np.multiply(X[i], s[k], out=X[i])
        return torch.from_numpy(scipy.fft.irfft(X, n=n, axis=-1, overwrite_x=True, workers=workers))
    X = torch.fft.rfft(x.float(), n=n)
    if index is not None:  # gather one row per example; a negative index picks an all-pass row
        rows = spec.reshape(-1, spec.shape[-1])
        spec = torch.cat([rows, torch.ones_like(rows[:1])])
        index = torch.as_tensor(index, device=spec.device).long()
        spec = spec[torch.where(index >= 0, index, spec.shape[0] - 1)]
    return torch.fft.irfft(X * spec, n=n)


def normalize_rir(h: torch.Tensor, shift: torch.Tensor, normalize: str) -> torch.Tensor:
    """Scale RIRs ``(batch, L)``: ``energy`` (unit L2 norm), ``direct`` (peak at ``shift`` = 1) or ``none``."""
    if normalize == "energy":
        return h / h.pow(2).sum(-1, keepdim=True).sqrt()
    if normalize == "direct":
        peak = h.gather(1, shift.unsqueeze(1))
        if (peak.abs() <= 1e-12).any():
            raise ParameterError("normalize='direct': the RIR is zero at the direct-path index")
        return h / peak
    return h


def convolve_spectrum(x: torch.Tensor, spec: torch.Tensor, shift: torch.Tensor, *, n: int,
                      index: list[int] | torch.Tensor | None = None) -> torch.Tensor:
    """Core of :func:`convolve_rir` with the RIR spectra already computed (``spec``, ``index``: as in
    :func:`fft_filter`): FFT convolution of ``x`` ``(batch, time)``, cropped to ``time`` samples from ``shift``."""
    b, t = x.shape
    full = fft_filter(x, spec, n=n, index=index)
    if shift.numel() == 1 or bool((shift == shift[0]).all()):
        s = int(shift[0])
        return full[:, s : s + t]
    pos = shift.unsqueeze(1).expand(b, t) + torch.arange(t, device=x.device).unsqueeze(0)
    return full.gather(1, pos)


def direct_path_index(rir: torch.Tensor) -> torch.Tensor:
    """Index of the direct-path peak (largest absolute sample) of each RIR ``(batch, L)`` -> ``(batch,)``."""
    r, squeeze = as_batch(rir, "rir")
    idx = r.abs().argmax(dim=-1)
    return idx[0] if squeeze else idx


def convolve_rir(
    signal: torch.Tensor,
    rir: torch.Tensor,
    *,
    align: str | int | torch.Tensor = "direct",
    normalize: str = "energy",
    wet: float | torch.Tensor = 1.0,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reverberate ``signal`` with ``rir`` by FFT convolution, keeping time alignment and length.

    Args:
        signal: ``(batch, time)`` or ``(time,)``.
        rir: ``(batch, L)`` (one per example), or ``(L,)`` / ``(1, L)`` (the same for all), same sample rate.
        align: ``"direct"`` (shift by the direct-path peak), ``"none"`` (plain causal convolution,
            cropped to the input length), or the peak index: an int or a ``(batch,)`` tensor.
        normalize: ``"energy"``, ``"direct"`` or ``"none"`` (see the module docstring).
        wet: mix in [0, 1] (number or ``(batch,)``): ``wet * reverberated + (1 - wet) * signal``.
        lengths: valid samples per example; the reverberant tail is not written into padding.

    Returns:
        Same shape as ``signal``.

    Raises:
        ParameterError: an RIR with no energy, a non-finite RIR, mismatched batch sizes.
    """
    if normalize not in NORMALIZE:
        raise ParameterError(f"normalize={normalize!r} must be one of {NORMALIZE}")
    x, squeeze = as_batch(signal, "signal")
    h, _ = as_batch(rir, "rir")
    b, t = x.shape
    if h.shape[0] not in (1, b):
        raise ParameterError(f"rir has batch {h.shape[0]} but signal has {b}; give one RIR or one per example")
    h = h.to(device=x.device, dtype=torch.float32)
    if not torch.isfinite(h).all():
        raise ParameterError("rir has non-finite samples (NaN or inf)")
    energy = h.pow(2).sum(-1)
    if (energy <= 1e-12).any():
        idx = (energy <= 1e-12).nonzero().flatten().tolist()
        raise ParameterError(f"rir {idx} has no energy (all zeros): it would silence the signal")
    if isinstance(align, str):
        if align == "direct":
            shift = h.abs().argmax(dim=-1)
        elif align == "none":
            shift = torch.zeros(h.shape[0], dtype=torch.long, device=x.device)
        else:
            raise ParameterError(f"align={align!r} must be 'direct', 'none', an int or a (batch,) tensor of indices")
    else:
        shift = torch.as_tensor(align, dtype=torch.long, device=x.device).reshape(-1)
        if shift.numel() == 1:
            shift = shift.expand(h.shape[0])
        if shift.numel() != h.shape[0] or (shift < 0).any() or (shift >= h.shape[1]).any():
            raise ParameterError(f"align={align!r}: indices must be within 0..{h.shape[1] - 1}, one per RIR")
    h = normalize_rir(h, shift, normalize)
    n = _fft_size(t + h.shape[1] - 1)
    wet_sig = convolve_spectrum(x, rfft(h, n), shift, n=n)
    out = mix_wet(x, wet_sig, wet=wet, lengths=lengths)
    return out[0] if squeeze else out


def mix_wet(x: torch.Tensor, wet_sig: torch.Tensor, *, wet: float | torch.Tensor = 1.0,
            lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``wet * wet_sig + (1 - wet) * x`` (``wet`` a number or ``(batch,)``), padding (``lengths``) zeroed."""
    b, t = x.shape
    w = torch.as_tensor(wet, dtype=torch.float32, device=x.device).reshape(-1)
    if ((w < 0) | (w > 1)).any():
        raise ParameterError(f"wet={wet!r} must be within [0, 1]")
    if bool((w == 1.0).all()):
        out = wet_sig
    else:
        w = w.unsqueeze(1) if w.numel() > 1 else w
        out = w * wet_sig + (1.0 - w) * x.float()
    if lengths is not None:
        from roomtone.prepare.noise import valid_mask

        out = out * valid_mask(lengths, batch=b, time=t, device=x.device)
    return out.to(x.dtype)


def schroeder_db(rir: torch.Tensor) -> torch.Tensor:
    """Energy decay curve in dB (Schroeder backward integration), 0 dB at the start. ``(..., L)``."""
    e = rir.double().pow(2).flip(-1).cumsum(-1).flip(-1)
    return 10.0 * torch.log10(e / e[..., :1].clamp_min(1e-30) + 1e-30)


def decay_end(rir: torch.Tensor, *, sr: int, margin_db: float = 5.0) -> int:
    """Where the decay of one RIR ``(L,)`` meets its noise floor (a simplified Lundeby truncation).

    The floor is the mean energy of the last 10 % of the RIR in 10 ms frames; the end is the first
    frame after the peak whose energy falls below the floor + ``margin_db``. An RIR whose tail is
    below -70 dB of its peak frame has no measurable floor: its full length is returned.
    """
    h = rir.reshape(-1).double()
    win = max(1, int(0.01 * sr))
    n_frames = h.numel() // win
    if n_frames < 10:
        return h.numel()
    env = h[: n_frames * win].pow(2).reshape(n_frames, win).mean(-1)
    floor = env[-max(1, n_frames // 10):].mean()
    top = int(env.argmax())
    if float(floor) <= float(env[top]) * 1e-7:
        return h.numel()
    below = torch.nonzero(env[top:] < floor * 10.0 ** (margin_db / 10.0)).flatten()
    return h.numel() if below.numel() == 0 else int(top + below[0]) * win


def measure_rt60(rir: torch.Tensor, *, sr: int) -> float:
    """RT60 in seconds of one RIR ``(L,)``, from the decay after its direct-path peak.

    The RIR is first cut where its decay meets the noise floor (:func:`decay_end`), then a line is
    fitted (least squares) to the Schroeder curve between -5 and -25 dB and extrapolated to -60 dB
    (T20); when the curve never reaches -25 dB, between -5 and -15 dB (T10). Returns NaN only if the
    RIR decays by less than 15 dB (no estimate possible); callers treat that as unknown.
    """
    h = rir.reshape(-1).double()
    if float(h.pow(2).sum()) <= 1e-20:
        raise ParameterError("rir has no energy (all zeros): no RT60")
    h = h[int(h.abs().argmax()):]
    h = h[: max(2, decay_end(h, sr=sr))]
    edc = schroeder_db(h)
    for lo in (-25.0, -15.0):
        sel = (edc <= -5.0) & (edc >= lo)
        if int(sel.sum()) >= 3 and float(edc.min()) <= lo:
            t = torch.nonzero(sel).flatten().double() / sr
            y = edc[sel]
            tm, ym = t.mean(), y.mean()
            slope = float(((t - tm) * (y - ym)).sum() / ((t - tm).pow(2).sum()).clamp_min(1e-30))
            if slope < 0:
                return -60.0 / slope
    return float("nan")


def measure_drr(rir: torch.Tensor, *, sr: int, window_ms: float = 2.5) -> float:
    """Direct-to-reverberant ratio in dB: energy within ``window_ms`` of the direct-path peak over the rest after it."""
    h = rir.reshape(-1).double()
    if float(h.pow(2).sum()) <= 1e-20:
        raise ParameterError("rir has no energy (all zeros): no DRR")
    p = int(h.abs().argmax())
    w = max(1, int(round(window_ms * 1e-3 * sr)))
    direct = h[max(0, p - w) : p + w + 1].pow(2).sum()
    rest = h[p + w + 1 :].pow(2).sum()
    return float(10.0 * torch.log10(direct.clamp_min(1e-30) / rest.clamp_min(1e-30)))
