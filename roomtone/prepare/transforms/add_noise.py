"""AddNoise: background noise from a bank of real recordings, at a random SNR."""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.banks import NoiseBank
from roomtone.prepare.noise import mix_at_snr
from roomtone.prepare.transforms.base import Transform, check_range, uniform


class AddNoise(Transform):
    """Add a random crop of a random noise clip at an SNR uniform in ``[min_snr_db, max_snr_db]``.

    Args:
        noise: a :class:`NoiseBank`, or a folder/CSV (loaded once at ``sr``, ``split`` rows only).
        sr: the audio's sample rate (must match the bank's).
        active: measure the SNR over the signal's active part (True) or the whole clip (False).
        mode: ``relative`` (SNR) or ``absolute`` (``min/max_snr_db`` read as noise level in dBFS).
        max_files: load only the first N files of the bank (quick runs).

    Params per example: ``noise`` (clip name), ``offset`` (samples), ``snr_db``; ``silent_signal``
    is True when the signal was silent and the noise was added at ``silent_dbfs`` instead.
    """

    def __init__(self, noise, *, sr: int, min_snr_db: float = 0.0, max_snr_db: float = 20.0, p: float = 1.0,
                 split: str | None = "train", active: bool = False, mode: str = "relative",
                 silent_dbfs: float = -50.0, max_files: int | None = None, seed: int = 0):
        super().__init__(p=p, sr=sr, seed=seed)
        check_range("snr_db", min_snr_db, max_snr_db)
        if mode not in ("relative", "absolute"):
            raise ParameterError(f"mode={mode!r} must be 'relative' or 'absolute'")
        self.bank = noise if isinstance(noise, NoiseBank) else NoiseBank.from_path(
            noise, sr=sr, split=split, max_files=max_files)
        if self.bank.sr != sr:
            raise ParameterError(f"the noise bank is at {self.bank.sr} Hz but sr={sr}; build the bank at sr={sr}")
        self.min_snr_db, self.max_snr_db = float(min_snr_db), float(max_snr_db)
        self.active, self.mode, self.silent_dbfs = bool(active), mode, float(silent_dbfs)

    def draw_params(self, x, g):
        b, t = x.shape
        idx, off = self.bank.draw(b, t, generator=g)
        snr = uniform(g, b, self.min_snr_db, self.max_snr_db)
        return [{"noise": self.bank.names[i], "offset": o, "snr_db": s} for i, o, s in zip(idx, off, snr, strict=True)]

    def apply(self, x, params, lengths):
        idx = [self.bank.index_of(p["noise"]) for p in params]
        off = [int(p["offset"]) for p in params]
        noise = self.bank.crop(idx, off, x.shape[1], device=x.device)
        snr = torch.tensor([p["snr_db"] for p in params], dtype=torch.float64, device=x.device)
        out, info = mix_at_snr(x, noise, snr, mode=self.mode, active=self.active, lengths=lengths,
                               silent_dbfs=self.silent_dbfs, silent_noise="keep", return_info=True)
        flags = (info["mode_absolute"] & (self.mode == "relative")).tolist()
        for p, f, s in zip(params, flags, info["scale"].tolist(), strict=True):
            if f:
                p["silent_signal"] = True
            if s == 0.0:
                p["silent_noise"] = True
        return out
