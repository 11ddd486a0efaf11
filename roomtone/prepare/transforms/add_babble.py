"""AddBabble: the sum of N other utterances (from the user's own recordings) at a random SNR."""

from __future__ import annotations

import os

import torch

from roomtone.prepare.banks import NoiseBank
from roomtone.prepare.noise import mix_at_snr
from roomtone.prepare.transforms.base import Transform, check_range, integers, uniform


class AddBabble(Transform):
    """Babble: ``n`` utterances (``min_speakers..max_speakers``) drawn from ``files`` (a list of paths or
    ``ManifestRow``s; a folder, CSV or prepared folder, of which the ``split`` rows are used; or a
    :class:`NoiseBank`), each scaled to unit RMS, summed, and mixed at an SNR
    uniform in ``[min_snr_db, max_snr_db]``. Utterances are cropped at random offsets (looped when short).

    Other utterances: the ``n`` utterances of an example are distinct, and, called with ``sources`` (each
    example's file; ``AudioDataset`` and ``roomtone simulate`` pass them), never a segment of the example's
    own recording. Without ``sources`` the transform cannot tell, and a bank built from the same files may
    (rarely: n / bank size) pick the example itself. Random candidates are drawn with replacement; when
    too few distinct others are among them (a bank of a few files), the next entries of the bank fill in,
    from their start. A bank with no other entry adds nothing (``utterances`` is empty).

    Params per example: ``utterances`` (names), ``offsets`` (samples), ``snr_db``.
    """

    uses_sources = True

    def __init__(self, files, *, sr: int, min_speakers: int = 3, max_speakers: int = 6, min_snr_db: float = 0.0,
                 max_snr_db: float = 20.0, p: float = 1.0, active: bool = False, split: str | None = "train",
                 seed: int = 0):
        super().__init__(p=p, sr=sr, seed=seed)
        check_range("snr_db", min_snr_db, max_snr_db)
        check_range("speakers", min_speakers, max_speakers, low=1)
        if isinstance(files, NoiseBank):
            self.bank = files
        elif isinstance(files, (str, os.PathLike)):
            self.bank = NoiseBank.from_path(files, sr=sr, split=split)
        else:
            self.bank = NoiseBank.from_files(list(files), sr=sr)
        self.min_speakers, self.max_speakers = int(min_speakers), int(max_speakers)
        self.min_snr_db, self.max_snr_db = float(min_snr_db), float(max_snr_db)
        self.active = bool(active)

    def draw_params(self, x, g, sources):
        b, t = x.shape
        k = 2 * self.max_speakers + 2  # candidates per example: duplicates and the example itself are dropped
        counts = [self.min_speakers + c for c in integers(g, b, self.max_speakers - self.min_speakers + 1)]
        idx, off = self.bank.draw(b * k, t, generator=g)
        snr = uniform(g, b, self.min_snr_db, self.max_snr_db)
        own = self.bank.indices_of_files(sources)
        out = []
        for i in range(b):
            chosen: dict[int, int] = {}  # bank index -> offset, in draw order
            for j, o in zip(idx[i * k : (i + 1) * k], off[i * k : (i + 1) * k], strict=True):
                if j not in own[i] and j not in chosen and len(chosen) < counts[i]:
                    chosen[j] = o
            j = idx[(i + 1) * k - 1]
            for _ in range(len(self.bank)):  # too few distinct others drawn: walk the bank
                if len(chosen) >= counts[i]:
                    break
                j = (j + 1) % len(self.bank)
                if j not in own[i] and j not in chosen:
                    chosen[j] = 0
            out.append({"utterances": [self.bank.names[j] for j in chosen], "offsets": list(chosen.values()),
                        "snr_db": snr[i]})
        return out

    def apply(self, x, params, lengths):
        t = x.shape[1]
        rows = []
        for p in params:
            idx = [self.bank.index_of(n) for n in p["utterances"]]
            if not idx:  # every candidate was the example's own recording (a tiny bank): nothing to add
                rows.append(x.new_zeros(t, dtype=torch.float32))
                continue
            crops = self.bank.crop(idx, p["offsets"], t, device=x.device)
            crops = crops / crops.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)
            rows.append(crops.sum(0))
        babble = torch.stack(rows)
        snr = torch.tensor([p["snr_db"] for p in params], dtype=torch.float64, device=x.device)
        return mix_at_snr(x, babble, snr, active=self.active, lengths=lengths, silent_noise="keep")
