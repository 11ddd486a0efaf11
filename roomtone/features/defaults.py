"""The single home of front-end defaults: log-mel settings as one function of the sample rate.

Every default front end in roomtone (the recipe, ``TrainConfig`` fields left None, the expect stage, the
feature cache, ``roomtone design`` and the demo) calls :func:`frontend_defaults`; nothing else holds these
numbers. The three constants below are the whole policy:

* ``WINDOW_SECONDS``: the FFT size is the largest power of two not longer than this (32-64 ms windows:
  512 at 8 kHz, 1024 at 16/22.05 kHz, 2048 at 32-48 kHz), long enough that the lowest mel bands still
  span FFT bins.
* ``HOP_SECONDS``: 10 ms between frames, the usual speech/sound-event frame rate.
* ``N_MELS``: 64 bands.
"""

from __future__ import annotations

import math

import numpy as np

from roomtone.errors import ParameterError

WINDOW_SECONDS = 0.064
HOP_SECONDS = 0.010
N_MELS = 64


def frontend_defaults(*, sr: int) -> dict:
    """``{"sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax"}`` of the default log-mel at ``sr`` Hz.

    >>> frontend_defaults(sr=16000)
    {'sr': 16000, 'n_fft': 1024, 'hop_length': 160, 'n_mels': 64, 'fmin': 0.0, 'fmax': None}
    """
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    n_fft = 2 ** int(math.floor(math.log2(WINDOW_SECONDS * sr)))
    return {
        "sr": int(sr),
        "n_fft": int(max(n_fft, 64)),
        "hop_length": int(max(1, round(HOP_SECONDS * sr))),
        "n_mels": int(N_MELS),
        "fmin": 0.0,
        "fmax": None,
    }
