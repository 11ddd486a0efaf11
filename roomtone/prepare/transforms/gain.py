"""Gain: multiply each example by a random gain in dB."""

from __future__ import annotations

import torch

from roomtone.prepare.microphones import gain
from roomtone.prepare.transforms.base import Transform, check_range, uniform


class Gain(Transform):
    """Random gain in ``[min_gain_db, max_gain_db]`` dB per example. Params: ``gain_db``."""

    def __init__(self, *, min_gain_db: float = -6.0, max_gain_db: float = 6.0, p: float = 1.0,
                 sr: int | None = None, seed: int = 0):
        super().__init__(p=p, sr=sr, seed=seed)
        check_range("gain_db", min_gain_db, max_gain_db)
        self.min_gain_db, self.max_gain_db = float(min_gain_db), float(max_gain_db)

    def draw_params(self, x, g):
        return [{"gain_db": v} for v in uniform(g, x.shape[0], self.min_gain_db, self.max_gain_db)]

    def apply(self, x, params, lengths):
        db = torch.tensor([p["gain_db"] for p in params], dtype=torch.float32, device=x.device)
        return gain(x, db=db)
