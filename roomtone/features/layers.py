"""Thin nn.Modules over the functional core: Spectrogram, MelSpectrogram, PowerToDB, AmplitudeToDB, MFCC,
Delta, and the ``log_mel`` preset.

Every layer maps ``(..., time) -> (..., freq, frames)`` (or spectrogram -> spectrogram) and holds its
window / DFT kernel / filterbank as buffers, so ``.to(device)`` and ``.double()`` move them along.
``forward(x, lengths=None)`` returns the tensor, or ``(tensor, frame_lengths)`` when ``lengths`` is given.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.features import filters
from roomtone.features import functional as Fn


def _buffer(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.get_default_dtype())


# CPU only: a big batch is run in slices of about this many bytes of working set (STFT frames and their
# spectra), so that a slice stays in cache: 2-3x faster than one pass over 256 clips of 1 s.
CPU_CHUNK_BYTES = 6 * 2**20


def run_in_cpu_chunks(fn, x: torch.Tensor, lengths: torch.Tensor | None, *, n_fft: int, hop_length: int,
                      bytes_per_sample: float | None = None):
    """``fn(x, lengths)`` on slices of the batch (dim 0) when ``x`` is a large CPU batch in eager mode.

    A slice holds about ``CPU_CHUNK_BYTES`` of STFT frames and spectra (or ``bytes_per_sample`` per input sample).
    Results are identical to one call (every layer works per example); GPU, export and tracing run
    ``fn`` once.
    """
    if (x.device.type != "cpu" or x.dim() < 2 or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
            or torch.compiler.is_compiling()):
        return fn(x, lengths)
    if bytes_per_sample is None:
        per_example = (x.shape[-1] // hop_length + 1) * n_fft * 8  # float32 frames + complex64 half spectrum
    else:
        per_example = int(x.shape[-1] * bytes_per_sample)
    per_example *= max(1, x[0].numel() // max(1, x.shape[-1]))
    step = max(1, CPU_CHUNK_BYTES // per_example)
    if step >= x.shape[0]:
        return fn(x, lengths)
    if lengths is not None:
        lengths = Fn.check_lengths(lengths, x, axis_size=x.shape[-1], what="samples")
        outs = [fn(xc, lc) for xc, lc in zip(x.split(step), lengths.split(step), strict=True)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    return torch.cat([fn(xc, None) for xc in x.split(step)])


class WaveformLayer(nn.Module):
    """Base of the layers that take a waveform ``(..., time)``: ``forward(x, lengths=None)`` runs the
    subclass's ``_forward`` in CPU chunks of bounded memory (see :func:`run_in_cpu_chunks`), and
    ``frame_lengths`` asks the inner layer named by ``framer`` (the one that frames the audio)."""

    framer = ""

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frame count per example for ``lengths`` valid samples."""
        return getattr(self, self.framer).frame_lengths(lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        return run_in_cpu_chunks(self._forward, x, lengths, n_fft=self.n_fft, hop_length=self.hop_length)


class Spectrogram(WaveformLayer):
    """|STFT|**power: ``(..., time) -> (..., 1 + n_fft // 2, frames)``, same numbers as ``librosa.stft``.

    Args:
        n_fft, hop_length, win_length, window, center, pad_mode: as in librosa (``hop_length`` defaults
            to ``win_length // 4``; ``center=True`` pads ``n_fft // 2`` zeros on both sides, librosa >= 0.10).
        power: 2.0 power, 1.0 magnitude, None complex (``stft_impl="fft"`` only).
        stft_impl: ``"fft"`` (torch.stft), ``"conv"`` (strided conv1d with a fixed DFT kernel; exports to
            ONNX), or ``"auto"`` (fft in eager mode, conv while exporting/tracing).
        bins: keep only frequency bins ``lo..hi-1`` (used by the mel layers to skip unused bins).

    Frames: ``1 + time // hop_length`` when ``center`` else ``1 + (time - n_fft) // hop_length``.
    """

    def __init__(
        self, n_fft: int = 2048, hop_length: int | None = None, win_length: int | None = None, window="hann",
        center: bool = True, pad_mode: str = "constant", power: float | None = 2.0, *, stft_impl: str = "auto",
        bins: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = filters.resolve_fft_args(n_fft, hop_length, win_length)
        if power is not None and not (isinstance(power, (int, float)) and power > 0):
            raise ParameterError(f"power={power!r} must be a positive number or None (complex output)")
        if stft_impl not in Fn.STFT_IMPLS:
            raise ParameterError(f"stft_impl={stft_impl!r} must be one of {Fn.STFT_IMPLS}")
        if pad_mode not in ("constant", "reflect", "replicate", "circular"):
            raise ParameterError(f"pad_mode={pad_mode!r} must be 'constant', 'reflect', 'replicate' or 'circular'")
        n_freq = self.n_fft // 2 + 1
        if bins is not None and not (0 <= bins[0] < bins[1] <= n_freq):
            raise ParameterError(f"bins={bins!r} must satisfy 0 <= lo < hi <= {n_freq}")
        if power is None and stft_impl == "conv":
            raise ParameterError("power=None (complex output) needs stft_impl='fft' or 'auto'")
        self.center, self.pad_mode, self.power, self.stft_impl = bool(center), pad_mode, power, stft_impl
        self.bins = None if bins is None else (int(bins[0]), int(bins[1]))
        win = filters.get_window(window, self.win_length, n_fft=self.n_fft)
        self.register_buffer("window", _buffer(win), persistent=False)
        kernel = Fn.dft_kernel(win, n_fft=self.n_fft, bins=self.bins) if stft_impl != "fft" else np.zeros((0, 0))
        self.register_buffer("dft_kernel", _buffer(kernel), persistent=False)

    @property
    def n_freq(self) -> int:
        return (self.bins[1] - self.bins[0]) if self.bins else self.n_fft // 2 + 1

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frame count per example for ``lengths`` valid samples."""
        return Fn.frame_lengths(lengths, n_fft=self.n_fft, hop_length=self.hop_length, center=self.center)

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = Fn.check_lengths(lengths, x, axis_size=x.shape[-1], what="samples")
        spec = Fn.stft_power(
            x, n_fft=self.n_fft, hop_length=self.hop_length, window=self.window, center=self.center,
            pad_mode=self.pad_mode, power=self.power, impl=Fn.resolve_impl(self.stft_impl), kernel=self.dft_kernel,
            bins=self.bins, lengths=lengths,
        )
        if lengths is None:
            return spec
        n_frames = self.frame_lengths(lengths)
        return Fn.mask_frames(spec, n_frames), n_frames

    def extra_repr(self) -> str:
        return (f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, "
                f"center={self.center}, pad_mode={self.pad_mode!r}, power={self.power}, stft_impl={self.stft_impl!r}")


def band_blocks(fb: np.ndarray, *, bands: int = 16) -> tuple[tuple[int, int, int, int], ...]:
    """Blocks ``(first band, end band, first bin, end bin)`` of ``bands`` consecutive filters and the bins
    they use, when multiplying block by block does at most half the work of the dense ``fb`` product
    (narrow mel triangles); else ``()``. 16 bands keep each GEMM wide enough to run at full speed."""
    blocks, work = [], 0
    for a in range(0, fb.shape[0], bands):
        used = np.flatnonzero(fb[a : a + bands].any(axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        blocks.append((a, min(a + bands, fb.shape[0]), lo, hi))
        work += (blocks[-1][1] - a) * (hi - lo)
    return tuple(blocks) if work <= fb.size / 2 else ()


class MelSpectrogram(WaveformLayer):
    """Mel power spectrogram ``(..., time) -> (..., n_mels, frames)``; equals ``librosa.feature.melspectrogram``.

    Only the STFT bins that some mel band uses (``fmin..fmax``) are computed. ``trainable=True`` makes the
    filterbank an ``nn.Parameter`` (kapre-style) initialised from the mel triangles.
    Attributes: ``sr, n_fft, hop_length, win_length, n_mels, fmin, fmax`` (``fmax`` resolved to Hz),
    ``center_freqs`` (Hz, one per band).
    """

    framer = "spectrogram"

    def __init__(
        self, sr: int = 22050, n_fft: int = 2048, hop_length: int | None = None, n_mels: int = 128,
        fmin: float = 0.0, fmax: float | None = None, htk: bool = False, norm: str | None = "slaney",
        power: float = 2.0, center: bool = True, pad_mode: str = "constant", *, win_length: int | None = None,
        window="hann", trainable: bool = False, stft_impl: str = "auto",
    ) -> None:
        super().__init__()
        filters.check_positive_int("sr", sr)
        filters.check_positive_int("n_mels", n_mels)
        if power is None:
            raise ParameterError("power=None is not allowed for a mel spectrogram; use 1.0 or 2.0")
        fb = filters.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
        used = np.flatnonzero(fb.any(axis=0))
        bins = (int(used[0]), int(used[-1]) + 1) if used.size else (0, fb.shape[1])
        self.spectrogram = Spectrogram(n_fft, hop_length, win_length, window, center, pad_mode, power,
                                       stft_impl=stft_impl, bins=bins)
        self.sr, self.n_mels, self.htk, self.norm = int(sr), int(n_mels), bool(htk), norm
        self.fmin, self.fmax = float(fmin), float(sr / 2.0 if fmax is None else fmax)
        self.n_fft, self.hop_length, self.win_length = (self.spectrogram.n_fft, self.spectrogram.hop_length,
                                                        self.spectrogram.win_length)
        self.trainable = bool(trainable)
        fb_t = _buffer(fb[:, bins[0]:bins[1]])
        if trainable:
            self.fb = nn.Parameter(fb_t)
        else:
            self.register_buffer("fb", fb_t)
        self.blocks = band_blocks(fb[:, bins[0]:bins[1]])
        self.center_freqs = filters.mel_frequencies(n_mels=n_mels + 2, fmin=self.fmin, fmax=self.fmax, htk=htk)[1:-1]

    @property
    def center(self) -> bool:
        return self.spectrogram.center


    def _forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        out = self.spectrogram._forward(x, lengths)
        spec, n_frames = out if lengths is not None else (out, None)
        with Fn.float32_context(spec):
            # (..., frames, bins) @ (bins, n_mels): GEMMs over all frames, then back to (..., n_mels, frames)
            frames_bins, fb = spec.transpose(-1, -2), self.fb.to(spec.dtype)
            if self.blocks and not self.trainable and not Fn.exporting():
                # each block of bands only touches its own range of bins: ~1/6 of the dense GEMM's work
                mel = torch.cat([frames_bins[..., lo:hi] @ fb[a:b, lo:hi].T for a, b, lo, hi in self.blocks], dim=-1)
            else:
                mel = frames_bins @ fb.T
            mel = mel.transpose(-1, -2).contiguous()
        return mel if n_frames is None else (mel, n_frames)

    def extra_repr(self) -> str:
        return (f"sr={self.sr}, n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}, htk={self.htk}, "
                f"norm={self.norm!r}, trainable={self.trainable}")


_COMPRESSIONS = ("db", "log", "log1p")


class PowerToDB(nn.Module):
    """Power spectrogram -> decibels, ``(..., freq, frames)`` in and out; equals ``librosa.power_to_db``.

    ``top_db`` floors each spectrogram at its **own** maximum minus ``top_db`` (never the batch maximum);
    ``ref`` is a number or ``"max"`` (per example). ``compression="log1p"`` gives ``log(1 + gain * S)``
    and ``"log"`` gives ``log(max(S, amin))`` (natural log, Kaldi-style) instead of decibels.
    ``forward(S, lengths)`` takes valid *frame* counts; padded frames do not count for the maximum and
    are set to the floor.
    """

    multiplier = 10.0

    def __init__(self, ref: float | str = 1.0, amin: float = 1e-10, top_db: float | None = None, *,
                 compression: str = "db", gain: float = 1.0) -> None:
        super().__init__()
        if compression not in _COMPRESSIONS:
            raise ParameterError(f"compression={compression!r} must be one of {_COMPRESSIONS}")
        if not (isinstance(amin, (int, float)) and amin > 0):
            raise ParameterError(f"amin={amin!r} must be > 0")
        if top_db is not None and not (isinstance(top_db, (int, float)) and top_db >= 0):
            raise ParameterError(f"top_db={top_db!r} must be >= 0 or None")
        if not (ref == "max" or (isinstance(ref, (int, float)) and ref > 0)):
            raise ParameterError(f"ref={ref!r} must be a positive number or 'max'")
        if compression != "db" and (top_db is not None or ref != 1.0):
            raise ParameterError(f"top_db/ref apply to compression='db' only (got compression={compression!r})")
        self.ref, self.amin, self.top_db, self.compression, self.gain = ref, float(amin), top_db, compression, gain

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = Fn.check_lengths(lengths, spec, axis_size=spec.shape[-1], what="frames")
        if self.compression == "db":
            out = Fn.power_to_db(spec, ref=self.ref, amin=self.amin, top_db=self.top_db, multiplier=self.multiplier,
                                 frame_lengths=lengths)
        else:
            with Fn.float32_context(spec):
                spec = Fn.as_float(spec)
                out = torch.log1p(self.gain * spec) if self.compression == "log1p" else torch.log(spec.clamp(min=self.amin))
                if lengths is not None:
                    floor = 0.0 if self.compression == "log1p" else float(np.log(self.amin))
                    out = Fn.mask_frames(out, lengths, floor)
        return out if lengths is None else (out, lengths)

    def extra_repr(self) -> str:
        return f"ref={self.ref!r}, amin={self.amin}, top_db={self.top_db}, compression={self.compression!r}"


class AmplitudeToDB(PowerToDB):
    """Magnitude spectrogram -> decibels (``20 log10``); equals ``librosa.amplitude_to_db`` (amin 1e-5)."""

    multiplier = 20.0

    def __init__(self, ref: float | str = 1.0, amin: float = 1e-5, top_db: float | None = None, *,
                 compression: str = "db", gain: float = 1.0) -> None:
        super().__init__(ref, amin, top_db, compression=compression, gain=gain)


class LogMel(WaveformLayer):
    """Mel power spectrogram in dB: ``(..., time) -> (..., n_mels, frames)``. Built by :func:`log_mel`."""

    framer = "mel"

    def __init__(self, mel: MelSpectrogram, db: PowerToDB) -> None:
        super().__init__()
        self.mel, self.db = mel, db
        for name in ("sr", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax"):
            setattr(self, name, getattr(mel, name))
        self.top_db = db.top_db

    @property
    def center_freqs(self) -> np.ndarray:
        return self.mel.center_freqs


    def _forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        if lengths is None:
            return self.db(self.mel._forward(x))
        mel, n_frames = self.mel._forward(x, lengths)
        return self.db(mel, n_frames)


def log_mel(
    *, sr: int, n_fft: int = 1024, hop_length: int | None = None, win_length: int | None = None, n_mels: int = 64,
    fmin: float = 0.0, fmax: float | None = None, top_db: float | None = 80.0, htk: bool = False,
    norm: str | None = "slaney", center: bool = True, pad_mode: str = "constant", ref: float | str = 1.0,
    amin: float = 1e-10, window="hann", trainable: bool = False, stft_impl: str = "auto",
) -> LogMel:
    """One module: waveform ``(..., time)`` at ``sr`` -> log-mel in dB ``(..., n_mels, frames)``.

    Keeps only the ``fmin..fmax`` band (the STFT bins outside it are never computed). ``top_db`` floors
    each example at its own maximum minus ``top_db``. Same numbers as
    ``librosa.power_to_db(librosa.feature.melspectrogram(...), top_db=top_db)`` on each clip.
    """
    mel = MelSpectrogram(sr, n_fft, hop_length, n_mels, fmin, fmax, htk, norm, 2.0, center, pad_mode,
                         win_length=win_length, window=window, trainable=trainable, stft_impl=stft_impl)
    return LogMel(mel, PowerToDB(ref=ref, amin=amin, top_db=top_db))


class MFCC(WaveformLayer):
    """MFCCs ``(..., time) -> (..., n_mfcc, frames)``; equals ``librosa.feature.mfcc`` (DCT of the dB mel
    spectrogram with ``top_db=80``, applied per example). Extra keyword arguments go to
    :class:`MelSpectrogram`. Padded frames (with ``lengths``) are zero.
    """

    framer = "mel"

    def __init__(self, sr: int = 22050, n_mfcc: int = 20, n_fft: int = 2048, hop_length: int | None = None,
                 n_mels: int = 128, *, dct_type: int = 2, norm: str | None = "ortho", lifter: float = 0.0,
                 top_db: float | None = 80.0, **mel_kwargs) -> None:
        super().__init__()
        filters.check_positive_int("n_mfcc", n_mfcc)
        if not (isinstance(lifter, (int, float)) and lifter >= 0):
            raise ParameterError(f"lifter={lifter!r} must be >= 0")
        self.mel = MelSpectrogram(sr, n_fft, hop_length, n_mels=n_mels, **mel_kwargs)
        self.db = PowerToDB(top_db=top_db)
        dct = filters.dct_matrix(n_in=n_mels, n_out=n_mfcc, dct_type=dct_type, norm=norm)
        if lifter > 0:
            k = np.arange(1, n_mfcc + 1, dtype=np.float64)
            dct = dct * (1 + (lifter / 2) * np.sin(np.pi * k / lifter))[:, None]
        self.register_buffer("dct", _buffer(dct))
        self.sr, self.n_mfcc, self.n_mels = int(sr), int(n_mfcc), int(n_mels)
        self.n_fft, self.hop_length = self.mel.n_fft, self.mel.hop_length


    def _forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        if lengths is None:
            db, n_frames = self.db(self.mel._forward(x)), None
        else:
            mel, n_frames = self.mel._forward(x, lengths)
            db, _ = self.db(mel, n_frames)
        with Fn.float32_context(db):
            out = torch.matmul(self.dct.to(db.dtype), db)
        return out if n_frames is None else (Fn.mask_frames(out, n_frames), n_frames)


class Delta(nn.Module):
    """Local derivative along frames, ``(..., freq, frames)`` in and out; equals
    ``librosa.feature.delta(width=width, order=order, mode="interp")``. ``lengths`` are valid frames."""

    def __init__(self, width: int = 9, order: int = 1) -> None:
        super().__init__()
        self.width, self.order = width, order
        self.register_buffer("weights", _buffer(filters.delta_weights(width=width, order=order)))

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = Fn.check_lengths(lengths, spec, axis_size=spec.shape[-1], what="frames")
        spec = Fn.as_float(spec)
        out = Fn.delta(spec, weights=self.weights, frame_lengths=lengths)
        return out if lengths is None else (out, lengths)

    def extra_repr(self) -> str:
        return f"width={self.width}, order={self.order}"
