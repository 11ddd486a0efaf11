"""AddColoredNoise: procedural noise (white, pink, brown, blue, violet) at a random SNR."""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.colored import COLORS, colored_noise
from roomtone.prepare.noise import mix_at_snr
from roomtone.prepare.transforms.base import Transform, check_range, integers, seeds, uniform


class AddColoredNoise(Transform):
    """Add colored noise (color drawn from ``colors``) at an SNR uniform in ``[min_snr_db, max_snr_db]``.

    Params per example: ``color``, ``snr_db``, ``noise_seed`` (the noise is regenerated from it on replay).
    """

    def __init__(self, *, colors=tuple(COLORS), min_snr_db: float = 0.0, max_snr_db: float = 20.0, p: float = 1.0,
                 sr: int | None = None, active: bool = False, mode: str = "relative", seed: int = 0):
        super().__init__(p=p, sr=sr, seed=seed)
        check_range("snr_db", min_snr_db, max_snr_db)
        colors = (colors,) if isinstance(colors, str) else tuple(colors)
        bad = [c for c in colors if c not in COLORS]
        if not colors or bad:
            raise ParameterError(f"colors={colors!r}: choose one or more of {sorted(COLORS)}")
        self.colors = colors
        self.min_snr_db, self.max_snr_db = float(min_snr_db), float(max_snr_db)
        self.active, self.mode = bool(active), mode

    def draw_params(self, x, g):
        b = x.shape[0]
        col = integers(g, b, len(self.colors))
        snr = uniform(g, b, self.min_snr_db, self.max_snr_db)
        sd = seeds(g, b)
        return [{"color": self.colors[c], "snr_db": s, "noise_seed": n} for c, s, n in zip(col, snr, sd, strict=True)]

    def apply(self, x, params, lengths):
        t = x.shape[1]
        noise = torch.stack([colored_noise(length=t, color=p["color"], seed=p["noise_seed"]) for p in params])
        snr = torch.tensor([p["snr_db"] for p in params], dtype=torch.float64, device=x.device)
        return mix_at_snr(x, noise.to(x.device), snr, mode=self.mode, active=self.active, lengths=lengths,
                          silent_noise="keep")
