"""Microphones: frequency response (band-pass, a (Hz, dB) curve, band limitation), gain, clipping,
bit-depth reduction, self-noise and lossy codec round trips; named presets.

Linear filtering is done in the FFT domain with the *magnitude* of the designed response (zero phase:
no group delay, the output stays time-aligned with the input). The band-pass is a Butterworth design
from scipy (second-order sections), made once per setting; its magnitude ``|H(f)|`` at the FFT bins is
cached per size and device and applied to whole batches at once. Every linear stage of a microphone is
fused into one spectral multiply.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

import numpy as np
import torch

from roomtone.errors import ParameterError
from roomtone.prepare.rooms import _fft_size, fft_filter

CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@functools.lru_cache(maxsize=64)
def design_bandpass(*, sr: int, fmin: float | None, fmax: float | None, order: int = 6) -> np.ndarray:
    """Butterworth SOS ``(sections, 6)``: band-pass (both edges), high-pass (``fmax=None``) or low-pass
    (``fmin=None``). ``order`` per edge: about ``6 * order`` dB per octave outside the band."""
    from scipy.signal import butter

    nyq = sr / 2.0
    if fmin is None and fmax is None:
        raise ParameterError("design_bandpass needs fmin, fmax or both")
    if fmin is not None and not 0 < fmin < nyq:
        raise ParameterError(f"fmin={fmin!r} must be within (0, {nyq}) Hz for sr={sr}")
    if fmax is not None and not 0 < fmax < nyq:
        raise ParameterError(f"fmax={fmax!r} must be within (0, {nyq}) Hz for sr={sr}")
    if fmin is not None and fmax is not None and fmin >= fmax:
        raise ParameterError(f"fmin={fmin!r} must be below fmax={fmax!r}")
    if not isinstance(order, int) or not 1 <= order <= 12:
        raise ParameterError(f"order={order!r} must be an integer in 1..12")
    if fmin is not None and fmax is not None:
        return butter(order, [fmin, fmax], btype="bandpass", fs=sr, output="sos")
    if fmin is not None:
        return butter(order, fmin, btype="highpass", fs=sr, output="sos")
    return butter(order, fmax, btype="lowpass", fs=sr, output="sos")


def bandpass_magnitude(*, sr: int, n_fft: int, fmin: float | None, fmax: float | None, order: int = 6) -> np.ndarray:
    """``|H(f)|`` of :func:`design_bandpass` at the ``n_fft // 2 + 1`` rfft bins."""
    from scipy.signal import sosfreqz

    sos = design_bandpass(sr=sr, fmin=fmin, fmax=fmax, order=order)
    _, h = sosfreqz(sos, worN=np.fft.rfftfreq(n_fft, 1.0 / sr), fs=sr)
    return np.abs(h)


def curve_magnitude(points, *, sr: int, n_fft: int) -> np.ndarray:
    """Magnitude at the rfft bins from a response curve ``[(Hz, dB), ...]``: linear in dB over
    log-frequency between points, flat (the end values) beyond them."""
    pts = sorted((float(f), float(db)) for f, db in points)
    if len(pts) < 2 or any(f <= 0 for f, _ in pts):
        raise ParameterError(f"curve={points!r} needs at least two (Hz, dB) points with Hz > 0")
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lf = np.log2(np.maximum(f, pts[0][0] * 0.5))
    db = np.interp(lf, np.log2([p[0] for p in pts]), [p[1] for p in pts])
    return 10.0 ** (db / 20.0)


def band_limit_magnitude(*, sr: int, n_fft: int, cutoff_hz: float, width: float = 0.05) -> np.ndarray:
    """What down-sampling to ``2 * cutoff_hz`` and back leaves: 1 below ``cutoff_hz * (1 - width)``,
    0 above ``cutoff_hz``, a raised-cosine edge between (the anti-aliasing filter of a resampler)."""
    if not 0 < cutoff_hz:
        raise ParameterError(f"cutoff_hz={cutoff_hz!r} must be > 0 Hz")
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo = cutoff_hz * (1 - width)
    x = np.clip((f - lo) / max(cutoff_hz - lo, 1e-9), 0, 1)
    return 0.5 * (1 + np.cos(np.pi * x))


def resample_roundtrip(x: torch.Tensor, *, sr: int, target_sr: int) -> torch.Tensor:
    """Down-sample ``x`` ``(..., time)`` to ``target_sr`` and back to ``sr`` with soxr (CPU): the real
    band limitation of a low-rate device or link. Same shape, device and dtype as ``x``.

    :func:`band_limit_magnitude` is the batched, in-graph equivalent used by the presets.
    """
    from roomtone.audio import resample_array

    if not isinstance(target_sr, int) or not 0 < target_sr <= sr:
        raise ParameterError(f"target_sr={target_sr!r} must be an integer in 1..sr={sr}")
    shape, t = x.shape, x.shape[-1]
    arr = x.detach().reshape(-1, t).cpu().float().numpy()
    down = resample_array(arr, orig_sr=sr, target_sr=target_sr)
    up = resample_array(down, orig_sr=target_sr, target_sr=sr)[:, :t]
    if up.shape[1] < t:
        up = np.pad(up, ((0, 0), (0, t - up.shape[1])))
    return torch.from_numpy(np.ascontiguousarray(up)).reshape(shape).to(device=x.device, dtype=x.dtype)


def response_padding(sr: int) -> int:
    """Zero padding (samples) that :func:`apply_magnitude` leaves so the response's tails do not wrap: 20 ms."""
    return max(64, sr // 50)


def apply_magnitude(x: torch.Tensor, magnitude_fn, *, sr: int) -> torch.Tensor:
    """Filter ``x`` ``(..., time)`` by a zero-phase magnitude response.

    ``magnitude_fn(n_fft) -> np.ndarray`` of ``n_fft // 2 + 1`` values (or ``(batch, n_fft // 2 + 1)``
    for per-example responses). The signal is zero padded by 20 ms so the filter's tails do not wrap.
    """
    t = x.shape[-1]
    n = _fft_size(t + response_padding(sr))
    mag = torch.as_tensor(np.asarray(magnitude_fn(n)), dtype=torch.float32, device=x.device)
    shape = x.shape
    return fft_filter(x.reshape(-1, t), mag, n=n)[..., :t].reshape(shape).to(x.dtype)


def clip(x: torch.Tensor, *, threshold: float = 1.0, mode: str = "hard") -> torch.Tensor:
    """Clip at ``threshold``: ``hard`` (clamp) or ``soft`` (``threshold * tanh(x / threshold)``)."""
    if threshold <= 0:
        raise ParameterError(f"threshold={threshold!r} must be > 0")
    if mode == "hard":
        return x.clamp(-threshold, threshold)
    if mode == "soft":
        return threshold * torch.tanh(x / threshold)
    raise ParameterError(f"mode={mode!r} must be 'hard' or 'soft'")


def quantize(x: torch.Tensor, *, bits: int) -> torch.Tensor:
    """Reduce to ``bits``-bit integer PCM (round to nearest, clamp to the integer range), back in float."""
    if not isinstance(bits, int) or not 2 <= bits <= 32:
        raise ParameterError(f"bits={bits!r} must be an integer in 2..32")
    q = float(2 ** (bits - 1))
    return (torch.round(x * q).clamp(-q, q - 1) / q).to(x.dtype)


def gain(x: torch.Tensor, *, db: float | torch.Tensor) -> torch.Tensor:
    """Multiply by ``10 ** (db / 20)``; ``db`` a number or ``(batch,)`` per example."""
    g = torch.as_tensor(db, dtype=torch.float32, device=x.device)
    g = 10.0 ** (g / 20.0)
    return x * (g.unsqueeze(-1) if g.ndim == 1 else g)


@functools.lru_cache(maxsize=8)
def codec_support(codec: str) -> tuple[bool, str]:
    """Whether this libsndfile can round-trip ``codec`` (``mp3``, ``vorbis``, ``opus``), and why not."""
    import soundfile as sf

    if codec not in CODECS:
        return False, f"unknown codec {codec!r}; known: {sorted(CODECS)}"
    fmt, sub = CODECS[codec]
    if sub not in sf.available_subtypes(fmt):
        return False, f"libsndfile {sf.__libsndfile_version__} has no {fmt}/{sub} encoder"
    try:
        buf = io.BytesIO()
        sf.write(buf, np.zeros(1600, np.float32), 16000, format=fmt, subtype=sub)
    except Exception as exc:  # noqa: BLE001 - any libsndfile failure means "not available"
        return False, f"libsndfile cannot write {codec}: {exc}"
    return True, ""


def codec_roundtrip(x: torch.Tensor, *, sr: int, codec: str = "mp3", quality: float = 0.5) -> torch.Tensor:
    """Encode and decode ``x`` ``(time,)`` or ``(batch, time)`` through ``codec`` in memory (CPU, libsndfile).

    ``quality`` in [0, 1]: libsndfile's compression level inverted (1 = best, highest bitrate). The result
    has the input's length, device and dtype. Opus runs at the nearest rate it supports (8/12/16/24/48 kHz).

    Raises:
        ParameterError: unknown codec, or this libsndfile cannot encode it (the reason is in the message).
    """
    import soundfile as sf

    from roomtone.audio import resample_array

    ok, why = codec_support(codec)
    if not ok:
        raise ParameterError(f"codec={codec!r} is not available: {why}")
    if not 0.0 <= quality <= 1.0:
        raise ParameterError(f"quality={quality!r} must be within [0, 1]")
    fmt, sub = CODECS[codec]
    squeeze = x.ndim == 1
    arr = x.detach().reshape(-1, x.shape[-1]).cpu().float().numpy()
    rate = sr if codec != "opus" or sr in _OPUS_RATES else min(_OPUS_RATES, key=lambda r: (r < sr, abs(r - sr)))
    out = np.empty_like(arr)
    for i, row in enumerate(arr):
        y = resample_array(row, orig_sr=sr, target_sr=rate) if rate != sr else row
        buf = io.BytesIO()
        sf.write(buf, np.clip(y, -1, 1), rate, format=fmt, subtype=sub, compression_level=1.0 - quality)
        buf.seek(0)
        y, _ = sf.read(buf, dtype="float32")
        if rate != sr:
            y = resample_array(y, orig_sr=rate, target_sr=sr)
        y = y[: arr.shape[1]]
        out[i, : y.shape[0]] = y
        out[i, y.shape[0]:] = 0.0
    res = torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
    return res[0] if squeeze else res


@dataclass(frozen=True)
class MicPreset:
    """A microphone: response ``curve`` [(Hz, dB)], Butterworth band (``fmin``/``fmax`` Hz, ``order``),
    ``band_limit_hz`` (down/up-sampling), ``self_noise_dbfs`` (white noise floor), clipping
    (``clip_mode`` ``soft``/``hard``/``none``, ``clip_threshold``), ``bits`` (PCM depth), optional ``codec`` (+ ``codec_quality``)."""

    name: str
    curve: tuple = ()
    fmin: float | None = None
    fmax: float | None = None
    order: int = 4
    band_limit_hz: float | None = None
    self_noise_dbfs: float | None = None
    clip_mode: str = "soft"
    clip_threshold: float = 1.0
    bits: int | None = 16
    codec: str | None = None
    codec_quality: float = 0.5
    notes: str = field(default="", compare=False)

    def magnitude(self, *, sr: int, n_fft: int) -> np.ndarray:
        """The fused linear response (curve x band-pass x band limit) at the rfft bins."""
        return _preset_magnitude(self, sr, n_fft)


@functools.lru_cache(maxsize=64)
def _preset_magnitude(p: MicPreset, sr: int, n_fft: int) -> np.ndarray:
    mag = np.ones(n_fft // 2 + 1)
    if p.curve:
        mag = mag * curve_magnitude(p.curve, sr=sr, n_fft=n_fft)
    nyq = sr / 2.0
    fmin = p.fmin if p.fmin is not None and p.fmin < nyq * 0.95 else None
    fmax = p.fmax if p.fmax is not None and p.fmax < nyq * 0.95 else None
    if fmin is not None or fmax is not None:
        mag = mag * bandpass_magnitude(sr=sr, n_fft=n_fft, fmin=fmin, fmax=fmax, order=p.order)
    if p.band_limit_hz is not None and p.band_limit_hz < nyq:
        mag = mag * band_limit_magnitude(sr=sr, n_fft=n_fft, cutoff_hz=p.band_limit_hz)
    return mag


# Curves are written here, not fetched: shapes typical of published datasheets and measurements of
# each kind of device (MEMS capsule behind a small port, a laptop array behind a grille, a boom
# headset electret, a far-field array a few metres away). They are illustrative, not a specific product.
PRESETS: dict[str, MicPreset] = {
    "phone": MicPreset(
        "phone",
        curve=((50, -18), (100, -9), (200, -3), (400, 0), (1000, 0), (2000, 1.5), (3500, 4), (5000, 3),
               (7000, 0), (9000, -6), (12000, -14)),
        fmin=100.0, fmax=10000.0, order=3, self_noise_dbfs=-72.0, clip_mode="soft", clip_threshold=0.95, bits=16,
        notes="smartphone MEMS microphone: low-cut, presence rise from the port resonance"),
    "laptop": MicPreset(
        "laptop",
        curve=((80, -20), (150, -10), (300, -3), (600, 0), (1500, 1), (3000, 3), (5000, 1), (8000, -5),
               (11000, -12)),
        fmin=150.0, fmax=9000.0, order=3, self_noise_dbfs=-62.0, clip_mode="hard", clip_threshold=1.0, bits=16,
        notes="laptop array behind a grille: thin bass, fan/electrical noise floor"),
    "headset": MicPreset(
        "headset",
        curve=((60, -10), (120, -3), (250, 0), (1000, 0), (3000, 2), (5000, 1), (7000, -3)),
        fmin=80.0, band_limit_hz=8000.0, order=4, self_noise_dbfs=-76.0, clip_mode="soft", clip_threshold=0.9,
        bits=16, notes="boom electret over a Bluetooth wideband link (16 kHz sampling)"),
    "far-field": MicPreset(
        "far-field",
        curve=((60, -14), (150, -6), (400, -1), (1000, 0), (3000, -1), (6000, -5), (10000, -12)),
        fmin=90.0, order=4, self_noise_dbfs=-55.0, clip_mode="hard", clip_threshold=1.0, bits=16,
        notes="smart-speaker array a few metres away: high-frequency loss, high noise floor after gain"),
    "voip": MicPreset(
        "voip",
        curve=((60, -10), (120, -3), (250, 0), (1000, 0), (3000, 2), (5000, 1), (7000, -3)),
        fmin=80.0, band_limit_hz=8000.0, order=4, self_noise_dbfs=-70.0, clip_mode="soft", clip_threshold=0.9,
        bits=16, codec="opus", codec_quality=0.3, notes="headset over a video call: wideband Opus at a low bitrate"),
    "telephone": MicPreset(
        "telephone", fmin=300.0, fmax=3400.0, order=4, band_limit_hz=4000.0, self_noise_dbfs=-60.0,
        clip_mode="hard", clip_threshold=1.0, bits=8, notes="narrowband telephone line (300-3400 Hz, 8-bit)"),
}


def get_preset(mic: str | MicPreset) -> MicPreset:
    """A preset by name (``phone``, ``laptop``, ``headset``, ``far-field``, ``voip``, ``telephone``) or as given."""
    if isinstance(mic, MicPreset):
        return mic
    if mic not in PRESETS:
        raise ParameterError(f"mic={mic!r} is not a known preset; choose one of {sorted(PRESETS)}")
    return PRESETS[mic]


def simulate_microphone(
    x: torch.Tensor,
    *,
    sr: int,
    mic: str | MicPreset = "phone",
    gain_db: float | torch.Tensor = 0.0,
    noise: torch.Tensor | None = None,
    codec: bool | str = True,
    response: bool = True,
) -> torch.Tensor:
    """Pass ``x`` ``(batch, time)`` or ``(time,)`` through microphone ``mic`` (deterministic).

    Order: linear response -> gain -> self-noise (``noise``: unit-RMS noise of ``x``'s shape, scaled
    to ``self_noise_dbfs``; None: no self-noise) -> clipping -> bit depth -> codec (CPU round trip,
    skipped when ``codec=False``; a codec name forces that codec). ``response=False`` skips the linear
    response (already applied, e.g. fused with a room's by ``Compose``).
    """
    p = get_preset(mic)
    y = apply_magnitude(x, lambda n: p.magnitude(sr=sr, n_fft=n), sr=sr) if response else x
    if bool((torch.as_tensor(gain_db) != 0).any()):
        y = gain(y, db=gain_db)
    if noise is not None and p.self_noise_dbfs is not None:
        y = y + noise.to(y.device, y.dtype) * 10.0 ** (p.self_noise_dbfs / 20.0)
    if p.clip_mode != "none":
        y = clip(y, threshold=p.clip_threshold, mode=p.clip_mode)
    if p.bits is not None and p.bits < 32:
        y = quantize(y, bits=p.bits)
    name = codec if isinstance(codec, str) else (p.codec if codec else None)
    if name is not None:
        y = codec_roundtrip(y, sr=sr, codec=name, quality=p.codec_quality)
    return y
