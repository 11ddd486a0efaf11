"""Typed errors. Every user-facing failure is a :class:`RoomtoneError`.

``exit_code`` is what ``roomtone`` exits with when the error reaches the command line: 2 for a bad
argument or bad input data (fix the command or the data), 3 for a file system failure (permission,
full disk, a file where a folder is needed). Anything else that escapes is a bug: exit code 4.
"""

from __future__ import annotations


class RoomtoneError(Exception):
    """Root of every error roomtone raises on purpose."""

    exit_code = 2


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


class OutputExistsError(ParameterError, FileExistsError):
    """An output already holds a result; it is replaced only with ``overwrite=True``."""


class StorageError(RoomtoneError, OSError):
    """A file or folder cannot be read or written: permission, full disk, read-only file system, or a
    file where a folder is needed. The message names the path and the reason."""

    exit_code = 3


class MissingDependencyError(RoomtoneError, ImportError):
    """An optional package is not installed; the message says what to ``pip install``."""
