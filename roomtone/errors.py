"""Typed errors. Every user-facing failure is a :class:`RoomtoneError`."""

from __future__ import annotations


class RoomtoneError(Exception):
    """Root of every error roomtone raises on purpose."""


class ParameterError(RoomtoneError, ValueError):
    """A parameter has a bad value. The message repeats the value and says what is allowed."""


class AudioError(RoomtoneError):
    """An audio file cannot be used. The message names the file and the reason."""


class DataError(RoomtoneError):
    """A dataset, manifest, bank or cache is missing or inconsistent."""


class DownloadError(RoomtoneError):
    """A download failed (offline, bad hash). The message says where to put the file by hand."""


class CheckpointError(RoomtoneError):
    """A checkpoint or weights file is missing, unsafe or does not match the model."""


class ExportError(RoomtoneError):
    """An exported model could not be written or does not match the torch model."""
