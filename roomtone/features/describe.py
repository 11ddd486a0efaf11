"""The representation size table: what one clip costs as waveform, STFT, mel, CQT and MFCC.

Every shape comes from running the real layers on a silent clip of the requested length, so the table
follows the layers' actual frame conventions (``1 + time // hop_length`` centred frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from roomtone.errors import ParameterError, RoomtoneError


@dataclass(frozen=True)
class SizeRow:
    """One representation: its shape ``(freq, frames)`` (or ``(time,)``), element count and bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    values: int
    bytes: int
    bytes_per_second: float
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def describe_sizes(
    *, sr: int = 44100, seconds: float = 1.0, n_fft: int = 1024, hop_length: int = 512, n_mels: int = 128,
    n_mfcc: int = 20, n_bins: int = 72, bins_per_octave: int = 12, fmin: float | None = None,
) -> list[SizeRow]:
    """Sizes of one mono clip of ``seconds`` at ``sr`` Hz in each representation (float32 features)."""
    from roomtone.features import CQT, MFCC, MelSpectrogram, Spectrogram

    if not isinstance(sr, int) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    if not seconds > 0:
        raise ParameterError(f"seconds={seconds!r} must be > 0")
    n = int(round(sr * seconds))
    x = torch.zeros(n)
    rows: list[SizeRow] = []

    def add(name, shape, dtype_bytes, dtype, note=""):
        values = 1
        for s in shape:
            values *= int(s)
        nbytes = values * dtype_bytes
        rows.append(SizeRow(name, tuple(int(s) for s in shape), dtype, values, nbytes, nbytes / seconds, note))

    add("waveform", (n,), 2, "int16", "16-bit file")
    add("waveform", (n,), 4, "float32", "model input")
    with torch.no_grad():
        spec = Spectrogram(n_fft, hop_length, power=1.0)(x)
        add("STFT |X|", spec.shape, 4, "float32", f"n_fft {n_fft}")
        mel = MelSpectrogram(sr, n_fft, hop_length, n_mels=n_mels)(x)
        add("mel", mel.shape, 4, "float32", f"{n_mels} bands")
        try:
            cqt = CQT(sr, hop_length, fmin, n_bins, bins_per_octave)(x)
            add("CQT |X|", cqt.shape, 4, "float32", f"{bins_per_octave}/octave")
        except RoomtoneError as exc:
            rows.append(SizeRow("CQT |X|", (), "float32", 0, 0, 0.0, f"not possible: {exc}"))
        mfcc = MFCC(sr, n_mfcc, n_fft, hop_length, n_mels=n_mels)(x)
        add("MFCC", mfcc.shape, 4, "float32", f"{n_mfcc} coeffs")
    return rows
