"""Mix noise into a signal at an exact signal-to-noise ratio (functional core, no randomness).

Definitions (all powers are mean squares over the samples that count):

* whole clip (``active=None``/``False``): every valid sample counts (``lengths`` excludes padding);
* active part (``active=True``): only the signal's non-silent frames count: frames of ``frame_length``
  samples whose mean square is within ``top_db`` dB of the loudest frame. The same samples are used
  for the signal's and the noise's power, so the SNR is the one a listener hears while the source
  is active. A boolean mask ``(batch, time)`` may be given instead of ``True``.

SNR modes:

* ``mode="relative"``: ``snr_db`` is the SNR; ``out = signal + alpha * noise`` with
  ``alpha = sqrt(P_signal / (P_noise * 10 ** (snr_db / 10)))``.
* ``mode="absolute"``: ``snr_db`` is read as the noise level in dBFS (``10 log10`` of its mean square;
  a full-scale square wave is 0 dBFS, a full-scale sine -3 dBFS), independent of the signal.

A silent signal (power below ``1e-10``, i.e. -100 dBFS) has no SNR. With ``silent="absolute"`` (the
default) such examples get the noise at ``silent_dbfs`` instead, and ``return_info`` reports
``mode="absolute"`` for them; ``silent="error"`` raises :class:`ParameterError`. Silent noise cannot be
scaled to any level: ``silent_noise="error"`` (default) raises, ``silent_noise="keep"`` returns the
signal unchanged for that example and reports ``scale=0``. Nothing here ever returns NaN.
"""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError

SILENCE_POWER = 1e-10  # -100 dBFS


def __getattr__(name: str):
    """``NoiseBank`` lives in :mod:`roomtone.prepare.banks`; importable from here too."""
    if name == "NoiseBank":
        from roomtone.prepare.banks import NoiseBank

        return NoiseBank
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def as_batch(x: torch.Tensor, name: str = "audio") -> tuple[torch.Tensor, bool]:
    """``(time,)`` or ``(batch, time)`` -> ``((batch, time), was_1d)``; anything else is a ParameterError."""
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"{name} must be a torch.Tensor of shape (batch, time) or (time,), got {type(x).__name__}")
    if x.ndim == 1:
        return x.unsqueeze(0), True
    if x.ndim == 2:
        return x, False
    raise ParameterError(f"{name} has shape {tuple(x.shape)}; expected (batch, time) or (time,)")


def valid_mask(lengths: torch.Tensor | None, *, batch: int, time: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(batch, time)`` mask of the samples inside each example's ``lengths`` (all True when None)."""
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device).long().reshape(-1)
    if lengths.numel() != batch:
        raise ParameterError(f"lengths has {lengths.numel()} entries for a batch of {batch}")
    if (lengths < 1).any() or (lengths > time).any():
        raise ParameterError(f"lengths={lengths.tolist()} must be within 1..{time} (the padded length)")
    return torch.arange(time, device=device).unsqueeze(0) < lengths.unsqueeze(1)


def active_mask(
    signal: torch.Tensor, *, lengths: torch.Tensor | None = None, top_db: float = 40.0, frame_length: int = 256
) -> torch.Tensor:
    """Boolean mask ``(batch, time)`` (or ``(time,)``) of the signal's active (non-silent) samples.

    Frames of ``frame_length`` samples (the last one may be shorter) are active when their mean square
    is within ``top_db`` dB of the loudest frame of the same example; padding (``lengths``) is never
    active. A silent example gets an all-False mask.
    """
    if top_db <= 0:
        raise ParameterError(f"top_db={top_db!r} must be > 0 dB")
    if not isinstance(frame_length, int) or frame_length < 1:
        raise ParameterError(f"frame_length={frame_length!r} must be a positive integer (samples)")
    x, squeeze = as_batch(signal, "signal")
    b, t = x.shape
    valid = valid_mask(lengths, batch=b, time=t, device=x.device)
    n_frames = -(-t // frame_length)
    pad = n_frames * frame_length - t
    sq = torch.nn.functional.pad((x.float() ** 2) * valid, (0, pad)).reshape(b, n_frames, frame_length)
    cnt = torch.nn.functional.pad(valid.float(), (0, pad)).reshape(b, n_frames, frame_length).sum(-1)
    energy = sq.sum(-1) / cnt.clamp_min(1.0)
    peak = energy.max(dim=1, keepdim=True).values
    frames = (energy >= peak * 10.0 ** (-top_db / 10.0)) & (cnt > 0) & (peak > SILENCE_POWER)
    mask = frames.repeat_interleave(frame_length, dim=1)[:, :t] & valid
    return mask[0] if squeeze else mask


def masked_power(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean square of ``x`` ``(batch, time)`` over ``mask`` per example, shape ``(batch,)`` (0 when empty)."""
    m = mask.to(x.dtype)
    return (x * x * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def power_db(x: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Level in dB (``10 log10`` mean square; dBFS for audio in [-1, 1]) per example, floored at -200 dB."""
    x2, squeeze = as_batch(x, "x")
    if mask is None:
        mask = torch.ones_like(x2, dtype=torch.bool)
    else:
        mask = mask.reshape(x2.shape)
    out = 10.0 * torch.log10(masked_power(x2.double(), mask).clamp_min(1e-20))
    return out[0] if squeeze else out


def achieved_snr_db(
    signal: torch.Tensor, noise: torch.Tensor, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """SNR in dB between ``signal`` and the ``noise`` actually added to it, over ``mask`` (default: all)."""
    return power_db(signal, mask=mask) - power_db(noise, mask=mask)


def mix_at_snr(
    signal: torch.Tensor,
    noise: torch.Tensor,
    snr_db: float | torch.Tensor,
    *,
    mode: str = "relative",
    active: bool | torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    top_db: float = 40.0,
    frame_length: int = 256,
    silent: str = "absolute",
    silent_dbfs: float = -50.0,
    silent_noise: str = "error",
    return_info: bool = False,
):
    """Add ``noise`` to ``signal`` so that the SNR (or the noise level) is exactly ``snr_db``.

    Args:
        signal: ``(batch, time)`` or ``(time,)`` float tensor.
        noise: same shape as ``signal`` (crop or loop it first, e.g. with a ``NoiseBank``).
        snr_db: a number, or a ``(batch,)`` tensor of per-example values (dB; dBFS in absolute mode).
        mode: ``"relative"`` (SNR) or ``"absolute"`` (noise level in dBFS); see the module docstring.
        active: None/False: whole clip; True: the signal's active part (``top_db``, ``frame_length``);
            or a boolean ``(batch, time)`` mask of the samples that count.
        lengths: valid samples per example ``(batch,)`` for padded batches. Padding never counts in
            the powers, and no noise is added to it (it stays as it was).
        silent: what a silent signal gets in relative mode: ``"absolute"`` (noise at ``silent_dbfs``)
            or ``"error"``.
        silent_noise: ``"error"`` or ``"keep"`` (leave that example unchanged, ``scale=0``).
        return_info: also return a dict of ``(batch,)`` tensors: ``scale`` (alpha), ``mode_absolute``
            (bool: the noise level was set in dBFS), ``snr_db`` (the value used).

    Returns:
        The mixture, same shape and dtype as ``signal`` (and the info dict when asked).
    """
    if mode not in ("relative", "absolute"):
        raise ParameterError(f"mode={mode!r} must be 'relative' (SNR in dB) or 'absolute' (noise level in dBFS)")
    if silent not in ("absolute", "error"):
        raise ParameterError(f"silent={silent!r} must be 'absolute' or 'error'")
    if silent_noise not in ("error", "keep"):
        raise ParameterError(f"silent_noise={silent_noise!r} must be 'error' or 'keep'")
    x, squeeze = as_batch(signal, "signal")
    n, _ = as_batch(noise, "noise")
    if n.shape != x.shape:
        raise ParameterError(
            f"noise has shape {tuple(noise.shape)} but signal has {tuple(signal.shape)}; crop or loop the noise to "
            "the signal's length first (NoiseBank.crop does both)"
        )
    b, t = x.shape
    snr = torch.as_tensor(snr_db, dtype=torch.float64, device=x.device).reshape(-1)
    if snr.numel() == 1:
        snr = snr.expand(b)
    if snr.numel() != b:
        raise ParameterError(f"snr_db has {snr.numel()} values for a batch of {b}; give one number or one per example")
    if not torch.isfinite(snr).all():
        raise ParameterError(f"snr_db={snr.tolist()} must be finite numbers")
    whole = active is None or active is False
    if whole and lengths is None:  # fast path: every sample counts
        p_sig = torch.linalg.vector_norm(x.float(), dim=-1).double().pow(2) / t
        p_noise = torch.linalg.vector_norm(n.float(), dim=-1).double().pow(2) / t
        valid = None
    else:
        valid = valid_mask(lengths, batch=b, time=t, device=x.device)
        if whole:
            mask = valid
        elif active is True:
            mask = active_mask(x, lengths=lengths, top_db=top_db, frame_length=frame_length)
        else:
            mask = torch.as_tensor(active, device=x.device).bool().reshape(b, t) & valid
        xd, nd = x.double(), n.double()
        p_sig = masked_power(xd, mask)
        # the active part of a silent signal is empty: the noise power is then taken over the valid part
        p_noise = torch.where(mask.any(-1), masked_power(nd, mask), masked_power(nd, valid))
    noise_silent = p_noise <= SILENCE_POWER
    if noise_silent.any() and silent_noise == "error":
        idx = noise_silent.nonzero().flatten().tolist()
        raise ParameterError(
            f"noise is silent (below -100 dBFS) for example(s) {idx}: it cannot be scaled to any SNR; "
            "use another noise or silent_noise='keep'"
        )
    absolute = torch.full((b,), mode == "absolute", dtype=torch.bool, device=x.device)
    sig_silent = p_sig <= SILENCE_POWER
    if mode == "relative" and sig_silent.any():
        if silent == "error":
            idx = sig_silent.nonzero().flatten().tolist()
            raise ParameterError(
                f"signal is silent (below -100 dBFS) for example(s) {idx}: no SNR is defined; "
                "pass silent='absolute' to add the noise at silent_dbfs instead"
            )
        absolute = absolute | sig_silent
    target = torch.where(
        absolute,
        10.0 ** (torch.where(sig_silent & (mode == "relative"), torch.full_like(snr, silent_dbfs), snr) / 10.0),
        p_sig / 10.0 ** (snr / 10.0),
    )
    scale = torch.sqrt(target / p_noise.clamp_min(SILENCE_POWER))
    scale = torch.where(noise_silent, torch.zeros_like(scale), scale)
    if valid is None:
        out = torch.addcmul(x.float(), n.float(), scale.float().unsqueeze(1)).to(x.dtype)
    else:
        out = (x.double() + n.double() * scale.unsqueeze(1) * valid).to(x.dtype)
    out = out[0] if squeeze else out
    if not return_info:
        return out
    used = torch.where(sig_silent & (mode == "relative"), torch.full_like(snr, silent_dbfs), snr)
    return out, {"scale": scale, "mode_absolute": absolute, "snr_db": used}
