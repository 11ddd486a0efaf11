"""SpecAugment frequency and time masking (Park et al. 2019), driven by an explicit generator.

Active only in training mode. Masks are drawn per example (per leading index), time masks only inside
each example's valid frames when ``lengths`` is given. What was drawn is kept in ``last_params``.
"""

from __future__ import annotations

import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.features import functional as Fn

_MASK_VALUES = ("mean", "min")


def mask_along(
    spec: torch.Tensor, *, axis: int, n_masks: int, max_width: int, generator: torch.Generator,
    sizes: torch.Tensor, value: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero ``n_masks`` bands along ``axis`` (-2 freq, -1 time) of ``spec`` ``(N, freq, frames)``.

    Per example: width ~ U{0..min(max_width, size)}, start ~ U{0..size - width}, where ``size`` is the
    example's valid extent (``sizes`` ``(N,)``). Returns ``(masked, starts, widths)`` (``(N, n_masks)``).
    """
    n = spec.shape[0]
    u = torch.rand((2, n, n_masks), generator=generator, dtype=torch.float64)
    sizes_c = sizes.cpu().to(torch.float64)[:, None]
    widths = torch.floor(u[0] * (torch.clamp(sizes_c, max=max_width) + 1)).long()
    starts = torch.floor(u[1] * (sizes_c - widths + 1).clamp(min=1)).long()
    widths, starts = widths.to(spec.device), starts.to(spec.device)
    pos = torch.arange(spec.shape[axis], device=spec.device)
    hit = ((pos[None, None, :] >= starts[..., None]) & (pos[None, None, :] < (starts + widths)[..., None])).any(1)
    hit = hit[:, :, None] if axis == -2 else hit[:, None, :]
    return torch.where(hit, value, spec), starts, widths


class SpecAugment(nn.Module):
    """Frequency and time masks on ``(..., freq, frames)``; identity in eval mode.

    Args:
        freq_masks, freq_width: number of frequency masks and their maximum width (bins).
        time_masks, time_width: number of time masks and their maximum width (frames).
        mask_value: a number, ``"mean"`` or ``"min"`` (of each example's valid region).
        seed: seeds the module's own generator, used when ``forward`` gets no ``generator``.

    ``forward(spec, lengths=None, *, generator=None)``: ``lengths`` are valid frames per example (time
    masks stay inside them, padded frames are untouched). Returns the tensor, or ``(tensor, lengths)``.
    ``last_params``: one dict per example with the mask starts and widths.
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 27, time_masks: int = 2, time_width: int = 40, *,
                 mask_value: float | str = 0.0, seed: int = 0) -> None:
        super().__init__()
        for name, v in (("freq_masks", freq_masks), ("freq_width", freq_width), ("time_masks", time_masks),
                        ("time_width", time_width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ParameterError(f"{name}={v!r} must be an integer >= 0")
        if not (isinstance(mask_value, (int, float)) or mask_value in _MASK_VALUES):
            raise ParameterError(f"mask_value={mask_value!r} must be a number or one of {_MASK_VALUES}")
        self.freq_masks, self.freq_width, self.time_masks, self.time_width = freq_masks, freq_width, time_masks, time_width
        self.mask_value = mask_value
        self.generator = torch.Generator().manual_seed(int(seed))
        self.last_params: list[dict] = []

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None):
        lengths = Fn.check_lengths(lengths, spec, axis_size=spec.shape[-1], what="frames")
        if not self.training or (self.freq_masks == 0 and self.time_masks == 0):
            return spec if lengths is None else (spec, lengths)
        if spec.dim() < 2:
            raise ParameterError(f"SpecAugment expects (..., freq, frames); got shape {tuple(spec.shape)}")
        g = self.generator if generator is None else generator
        if g.device.type != "cpu":
            raise ParameterError("pass a CPU torch.Generator (the masks are drawn on the CPU)")
        shape = spec.shape
        flat = spec.reshape(-1, shape[-2], shape[-1])
        n = flat.shape[0]
        if lengths is None:
            t_sizes = torch.full((n,), shape[-1], dtype=torch.long)
            mask = None
        else:
            t_sizes = lengths.repeat_interleave(n // lengths.shape[0])
            mask = Fn.valid_mask(t_sizes, shape[-1], 3)
        value = self._value(flat, mask)
        f_sizes = torch.full((n,), shape[-2], dtype=torch.long)
        out, fs, fw = mask_along(flat, axis=-2, n_masks=self.freq_masks, max_width=self.freq_width, generator=g,
                                 sizes=f_sizes, value=value)
        out, ts, tw = mask_along(out, axis=-1, n_masks=self.time_masks, max_width=self.time_width, generator=g,
                                 sizes=t_sizes, value=value)
        if mask is not None:
            out = torch.where(mask, out, flat)
        self.last_params = [
            {"freq_starts": fs[i].tolist(), "freq_widths": fw[i].tolist(), "time_starts": ts[i].tolist(),
             "time_widths": tw[i].tolist()}
            for i in range(n)
        ]
        out = out.reshape(shape)
        return out if lengths is None else (out, lengths)

    def _value(self, flat: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if isinstance(self.mask_value, (int, float)):
            return flat.new_full((), float(self.mask_value))
        if self.mask_value == "mean":
            if mask is None:
                return flat.mean(dim=(-2, -1), keepdim=True)
            m = mask.to(flat.dtype)
            count = (m.sum(dim=(-2, -1), keepdim=True) * flat.shape[-2]).clamp(min=1)
            return (flat * m).sum(dim=(-2, -1), keepdim=True) / count
        valid = flat if mask is None else flat.masked_fill(~mask, float("inf"))
        return valid.amin(dim=(-2, -1), keepdim=True)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, time_masks={self.time_masks}, "
                f"time_width={self.time_width}, mask_value={self.mask_value!r}")
