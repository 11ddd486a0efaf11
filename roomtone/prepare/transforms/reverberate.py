"""Reverberate: convolve with a room impulse response from a measured or simulated bank."""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.roombank import RoomBank
from roomtone.prepare.rooms import NORMALIZE, _fft_size, convolve_spectrum, mix_wet, normalize_rir, rfft
from roomtone.prepare.transforms.base import Transform, check_range, uniform


def room_bank(rooms, *, sr: int, split: str | None = "train", **kw) -> RoomBank:
    """A :class:`RoomBank` from a bank, a folder/CSV of measured RIRs, or ``"simulated"`` (shoebox rooms;
    the ``test`` split uses different rooms from ``train``: another seed)."""
    if isinstance(rooms, RoomBank):
        return rooms
    if isinstance(rooms, str) and rooms == "simulated":
        base = int(kw.pop("seed", 0))
        offset = {"train": 0, "valid": 1000, "test": 2000}.get(split or "train", 0)
        return RoomBank.simulated(sr=sr, seed=base + offset, **kw)
    return RoomBank.from_path(rooms, sr=sr, split=split, **kw)


class Reverberate(Transform):
    """Convolve each example with a random RIR of the bank, time-aligned on its direct path.

    Args:
        rooms: a :class:`RoomBank`, a folder/CSV of RIRs, or ``"simulated"``.
        sr: the audio's sample rate (must match the bank's).
        min_rt60, max_rt60: keep only bank entries whose measured RT60 (s) is in range (None: all).
        min_drr_db, max_drr_db: likewise for the measured direct-to-reverberant ratio (dB).
        min_wet, max_wet: wet/dry mix drawn per example (1 = fully reverberant).
        normalize: RIR energy normalisation (see :func:`roomtone.prepare.rooms.convolve_rir`).

    Params per example: ``room`` (entry name), ``rt60_s``, ``drr_db`` (measured), ``wet``.
    """

    def __init__(self, rooms, *, sr: int, p: float = 1.0, split: str | None = "train",
                 min_rt60: float | None = None, max_rt60: float | None = None, min_drr_db: float | None = None,
                 max_drr_db: float | None = None, min_wet: float = 1.0,
                 max_wet: float = 1.0, normalize: str = "energy", seed: int = 0, bank_kw: dict | None = None):
        super().__init__(p=p, sr=sr, seed=seed)
        check_range("wet", min_wet, max_wet, low=0.0, high=1.0)
        if normalize not in NORMALIZE:
            raise ParameterError(f"normalize={normalize!r} must be one of {NORMALIZE}")
        bank = room_bank(rooms, sr=sr, split=split, **(bank_kw or {}))
        if bank.sr != sr:
            raise ParameterError(f"the room bank is at {bank.sr} Hz but sr={sr}; build the bank at sr={sr}")
        rt60 = drr = None
        if min_rt60 is not None or max_rt60 is not None:
            rt60 = (min_rt60 if min_rt60 is not None else 0.0, max_rt60 if max_rt60 is not None else float("inf"))
        if min_drr_db is not None or max_drr_db is not None:
            drr = (min_drr_db if min_drr_db is not None else -float("inf"),
                   max_drr_db if max_drr_db is not None else float("inf"))
        if rt60 is not None or drr is not None:
            bank = bank.filter(rt60=rt60, drr=drr)
        self.bank = bank
        self.min_wet, self.max_wet, self.normalize = float(min_wet), float(max_wet), normalize

    def draw_params(self, x, g):
        b = x.shape[0]
        idx = self.bank.draw(b, generator=g)
        wet = uniform(g, b, self.min_wet, self.max_wet)
        return [{"room": self.bank.names[i], "rt60_s": self.bank.rt60[i], "drr_db": self.bank.drr[i], "wet": w}
                for i, w in zip(idx, wet, strict=True)]

    def apply(self, x, params, lengths):
        data, peaks = self.bank.on(x.device)
        idx = torch.tensor([self.bank.index_of(p["room"]) for p in params], device=x.device)
        wet = torch.tensor([float(p["wet"]) for p in params], dtype=torch.float32, device=x.device)
        n = _fft_size(x.shape[1] + data.shape[1] - 1)
        spec = self.bank.spectra(n, device=x.device, normalize=self.normalize)
        shift = peaks[idx]
        if spec is None:  # a bank too large to cache its spectra: this batch's RIRs only
            wet_sig = convolve_spectrum(x, rfft(normalize_rir(data[idx], shift, self.normalize), n), shift, n=n)
        else:
            wet_sig = convolve_spectrum(x, spec, shift, n=n, index=idx)
        return mix_wet(x, wet_sig, wet=wet, lengths=lengths)
