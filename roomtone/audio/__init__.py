"""Audio files in and out: ``load``, ``save``, ``info`` (soundfile) and offline resampling (soxr)."""

from roomtone.audio.io import AudioInfo, info, load, save
from roomtone.audio.resample import resample_array

__all__ = ["AudioInfo", "info", "load", "resample_array", "save"]
