"""Fixed filters, built once in float64 numpy: windows, mel scale and filterbanks, DCT, delta weights.

These are plain functions with every argument explicit (the functional core); the layers in
``roomtone.features.layers`` turn their output into buffers. Semantics follow librosa (same names,
same numbers) so that a model trained here reads the same features as one trained on librosa.
"""

from __future__ import annotations

import math

import numpy as np

from roomtone.errors import ParameterError

# --- argument checks shared by the feature layers -------------------------------------------------


def check_positive_int(name: str, value, *, allow_none: bool = False) -> None:
    """Raise ParameterError unless ``value`` is a positive int (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        extra = " or None" if allow_none else ""
        raise ParameterError(f"{name}={value!r} must be a positive integer{extra}")


def check_nonneg_float(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
        math.isfinite(float(value)) and value >= 0
    ):
        raise ParameterError(f"{name}={value!r} must be a finite number >= 0")


def resolve_fft_args(n_fft, hop_length, win_length) -> tuple[int, int, int]:
    """librosa defaults: ``win_length = n_fft``, ``hop_length = win_length // 4``."""
    check_positive_int("n_fft", n_fft)
    check_positive_int("win_length", win_length, allow_none=True)
    check_positive_int("hop_length", hop_length, allow_none=True)
    win_length = int(n_fft if win_length is None else win_length)
    if win_length > n_fft:
        raise ParameterError(f"win_length={win_length} must be <= n_fft={n_fft}")
    hop_length = int(max(1, win_length // 4) if hop_length is None else hop_length)
    return int(n_fft), hop_length, win_length


# --- windows ----------------------------------------------------------------------------------------


def get_window(window, win_length: int, *, n_fft: int | None = None) -> np.ndarray:
    """A window of ``win_length`` samples, zero-padded at both ends to ``n_fft`` (librosa's pad_center).

    ``window`` is a scipy window name (``"hann"``, ``"hamming"``, ``("kaiser", 8.0)``...; periodic, like
    ``librosa.filters.get_window``), ``"povey"`` / ``"hanning"`` (Kaldi's symmetric windows), ``"ones"``,
    or an array of length ``win_length``. Returns float64 of shape ``(n_fft,)``.
    """
    n_fft = win_length if n_fft is None else n_fft
    if isinstance(window, str) and window in ("povey", "hanning"):
        n = np.arange(win_length, dtype=np.float64)
        a = 2 * np.pi / (win_length - 1) if win_length > 1 else 0.0
        win = 0.5 - 0.5 * np.cos(a * n)
        if window == "povey":
            win = win**0.85
    elif isinstance(window, str) and window in ("ones", "boxcar", "rectangular"):
        win = np.ones(win_length)
    elif isinstance(window, (str, tuple)):
        import scipy.signal

        try:
            win = scipy.signal.get_window(window, win_length, fftbins=True)
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"window={window!r} is not a window scipy knows ({exc})") from exc
    else:
        win = np.asarray(window, dtype=np.float64)
        if win.shape != (win_length,):
            raise ParameterError(f"window array has shape {win.shape}; expected ({win_length},)")
    lpad = (n_fft - win_length) // 2
    return np.pad(np.asarray(win, dtype=np.float64), (lpad, n_fft - win_length - lpad))


# --- mel scale --------------------------------------------------------------------------------------

_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freqs, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel (Slaney's auditory-toolbox scale by default, HTK's ``2595 log10(1 + f/700)`` if ``htk``)."""
    f = np.asarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mels = f / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mels)


def mel_to_hz(mels, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    freqs = _F_SP * m
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, freqs)


def mel_frequencies(*, n_mels: int = 128, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies in Hz, evenly spaced on the mel scale from ``fmin`` to ``fmax`` (both included).

    Same as ``librosa.mel_frequencies``. The centre frequencies of an ``n_mels``-band filterbank over
    ``fmin..fmax`` are ``mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]`` (also available
    as ``MelSpectrogram.center_freqs``). Returns float64 of shape ``(n_mels,)``.
    """
    check_positive_int("n_mels", n_mels)
    check_nonneg_float("fmin", fmin)
    check_nonneg_float("fmax", fmax)
    if fmax < fmin:
        raise ParameterError(f"fmax={fmax!r} must be >= fmin={fmin!r}")
    mels = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels)
    return mel_to_hz(mels, htk=htk)


def mel_filterbank(
    *, sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None, htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, float64 of shape ``(n_mels, 1 + n_fft // 2)``; equals ``librosa.filters.mel``.

    ``norm="slaney"`` divides each triangle by its width in Hz (constant energy per band); ``None`` keeps
    peak 1.
    """
    check_positive_int("sr", sr)
    check_positive_int("n_fft", n_fft)
    fmax = sr / 2.0 if fmax is None else float(fmax)
    if fmax > sr / 2.0 + 1e-9:
        raise ParameterError(f"fmax={fmax!r} must be <= sr/2={sr / 2.0!r} (Nyquist)")
    if norm not in ("slaney", None):
        raise ParameterError(f"norm={norm!r} must be 'slaney' or None")
    fftfreqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def kaldi_mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Kaldi's mel banks (triangles in the HTK mel domain ``1127 ln(1 + f/700)``, peak 1, no norm).

    Returns float64 ``(n_mels, 1 + n_fft // 2)``; the Nyquist column is zero, as in Kaldi.
    ``fmax <= 0`` counts from Nyquist (Kaldi's ``high_freq`` convention); None means Nyquist.
    """
    nyq = sr / 2.0
    fmax = nyq if fmax is None else (nyq + fmax if fmax <= 0 else float(fmax))
    if not (0 <= fmin < fmax <= nyq):
        raise ParameterError(f"need 0 <= fmin < fmax <= sr/2; got fmin={fmin!r}, fmax={fmax!r}, sr={sr}")

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    lo, hi = mel(fmin), mel(fmax)
    delta = (hi - lo) / (n_mels + 1)
    n_bins = n_fft // 2
    bin_mel = mel(np.arange(n_bins) * sr / n_fft)
    m = np.arange(n_mels)[:, None]
    left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
    up = (bin_mel[None] - left) / (center - left)
    down = (right - bin_mel[None]) / (right - center)
    w = np.maximum(0.0, np.minimum(up, down))
    return np.pad(w, ((0, 0), (0, 1)))


# --- DCT and delta ----------------------------------------------------------------------------------


def dct_matrix(*, n_in: int, n_out: int, dct_type: int = 2, norm: str | None = "ortho") -> np.ndarray:
    """Matrix ``D`` of shape ``(n_out, n_in)`` with ``D @ x == scipy.fft.dct(x, type, norm)[:n_out]``."""
    import scipy.fft

    if dct_type not in (1, 2, 3):
        raise ParameterError(f"dct_type={dct_type!r} must be 1, 2 or 3")
    if norm not in ("ortho", None):
        raise ParameterError(f"norm={norm!r} must be 'ortho' or None")
    if n_out > n_in:
        raise ParameterError(f"n_mfcc={n_out} must be <= n_mels={n_in}")
    return scipy.fft.dct(np.eye(n_in), type=dct_type, norm=norm, axis=0)[:n_out]


def delta_weights(*, width: int, order: int) -> np.ndarray:
    """Savitzky-Golay weights (polyorder = deriv = ``order``) as used by ``librosa.feature.delta``.

    ``delta[t] = sum_k w[k] x[t - width//2 + k]``. Returns float64 of shape ``(width,)``.
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 3 or width % 2 == 0:
        raise ParameterError(f"width={width!r} must be an odd integer >= 3")
    check_positive_int("order", order)
    if order >= width:
        raise ParameterError(f"order={order} must be < width={width}")
    half = width // 2
    k = np.arange(-half, half + 1, dtype=np.float64)
    vander = k[:, None] ** np.arange(order + 1)[None, :]
    pinv = np.linalg.pinv(vander)
    return pinv[order] * math.factorial(order)
