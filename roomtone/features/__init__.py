"""Feature layers (process stage): waveform ``(..., time)`` -> features ``(..., freq, frames)``.

Every layer is a thin ``nn.Module`` over the functional core in ``roomtone.features.functional`` and
``roomtone.features.filters``; numbers match librosa with the same explicit settings.
``forward(x, lengths=None)`` returns the tensor, or ``(tensor, frame_lengths)`` when ``lengths``
(valid samples per example) is given.
"""

from roomtone.features.cqt import CQT
from roomtone.features.defaults import frontend_defaults
from roomtone.features.filters import mel_filterbank, mel_frequencies
from roomtone.features.layers import (
    MFCC,
    AmplitudeToDB,
    Delta,
    LogMel,
    MelSpectrogram,
    PowerToDB,
    Spectrogram,
    log_mel,
)
from roomtone.features.resample import Resample
from roomtone.features.specaugment import SpecAugment

__all__ = [
    "CQT",
    "Resample",
    "MFCC",
    "AmplitudeToDB",
    "Delta",
    "LogMel",
    "MelSpectrogram",
    "PowerToDB",
    "SpecAugment",
    "Spectrogram",
    "frontend_defaults",
    "log_mel",
    "mel_filterbank",
    "mel_frequencies",
]
