"""Read and write audio files through libsndfile (soundfile), with typed errors.

``load`` returns float32 in [-1, 1]: shape ``(time,)`` when mono, ``(channels, time)`` otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from roomtone.audio.resample import resample_array
from roomtone.errors import AudioError, ParameterError
from roomtone.files import atomic_path


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, read without decoding the samples."""

    path: str
    sr: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sr if self.sr else 0.0

    @property
    def bit_depth(self) -> int | None:
        """Bits per sample for PCM/float subtypes, None for compressed formats."""
        return _BIT_DEPTH.get(self.subtype)


_BIT_DEPTH = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: file does not exist")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")


def info(path: str | os.PathLike) -> AudioInfo:
    """Header facts of an audio file (sample rate, channels, frames, subtype) without decoding it.

    Raises:
        AudioError: missing, empty, or not a format libsndfile can read.
    """
    path = Path(path)
    _check_file(path)
    try:
        i = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from exc
    return AudioInfo(str(path), int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def _check_wav_complete(path: Path) -> None:
    """libsndfile silently returns the samples a truncated WAV still has; compare the header's data size
    with the bytes present and raise AudioError when the file was cut short."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            length = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                present = size - pos - 8
                if length not in (0, 0xFFFFFFFF) and length > present:
                    raise AudioError(
                        f"{path}: truncated file: the header declares {length} bytes of samples but only "
                        f"{present} are present"
                    )
                return
            pos += 8 + length + (length & 1)


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = None,
    mono: bool = True,
    channel: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Load an audio file as float32 in [-1, 1].

    Args:
        path: any file libsndfile reads (wav 8/16/24/32-bit int and float, flac, ogg, mp3...).
        sr: target sample rate in Hz; resampled with soxr (high quality) when it differs. None keeps
            the file's rate.
        mono: average the channels into one (ignored when ``channel`` is given).
        channel: pick this channel (0-based) instead of averaging.
        offset: start reading at this time in seconds.
        duration: read at most this many seconds (None: to the end).

    Returns:
        ``(audio, sr)``: audio of shape ``(time,)`` when mono or one channel is picked,
        ``(channels, time)`` otherwise.

    Raises:
        AudioError: missing, empty, zero-length, truncated/corrupt, not audio, non-finite samples,
            or a channel index the file does not have.
    """
    if sr is not None and (not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ParameterError(f"sr={sr!r} must be a positive integer or None")
    if offset < 0:
        raise ParameterError(f"offset={offset!r} must be >= 0 seconds")
    if duration is not None and duration <= 0:
        raise ParameterError(f"duration={duration!r} must be > 0 seconds or None")
    meta = info(path)
    if meta.frames <= 0:
        raise AudioError(f"{path}: zero-length audio (no samples; empty recording or truncated file)")
    if meta.format in ("WAV", "WAVEX"):
        _check_wav_complete(Path(path))
    if channel is not None and not (-meta.channels <= channel < meta.channels):
        raise AudioError(
            f"{path}: channel={channel} does not exist; the file has {meta.channels} channel(s) "
            f"(valid: 0..{meta.channels - 1})"
        )
    start = int(round(offset * meta.sr))
    stop = None if duration is None else start + int(round(duration * meta.sr))
    try:
        data, file_sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio, the file is truncated or corrupt ({_reason(exc)})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no samples could be read (truncated file or offset past the end)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} non-finite sample(s) (NaN or inf)")
    data = data.T  # (channels, time)
    if channel is not None:
        data = data[channel]
    elif mono:
        data = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    if sr is not None and sr != file_sr:
        data = resample_array(data, orig_sr=file_sr, target_sr=sr)
        file_sr = sr
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), int(file_sr)


def save(
    path: str | os.PathLike,
    audio: torch.Tensor | np.ndarray,
    sr: int,
    *,
    subtype: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write audio of shape ``(time,)`` or ``(channels, time)`` to ``path``.

    The format follows the extension (wav, flac, ogg...). Samples outside [-1, 1] are clipped by the
    integer subtypes; use ``subtype="FLOAT"`` to keep them. The file is written next to its final
    name and moved into place, so a crash never leaves a half-written file under the final name.
    """
    path = Path(path)
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer")
    if path.exists() and not overwrite:
        raise AudioError(f"{path}: exists; pass overwrite=True to replace it")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise ParameterError(f"audio has shape {audio.shape}; expected (time,) or (channels, time)")
    if not np.isfinite(audio).all():
        raise ParameterError(f"refusing to write {path}: audio has non-finite samples")
    data = audio.T if audio.ndim == 2 else audio
    with atomic_path(path, keep_suffix=True, sweep=False) as tmp:  # keep .wav/.flac: it names the format
        sf.write(str(tmp), data.astype(np.float32, copy=False), int(sr), subtype=subtype)
    return path
