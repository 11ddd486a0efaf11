"""Output files that are never half-written: one home for atomic writes.

Every writer goes through :func:`atomic_path`: the data is written to ``.<name>.<pid>.tmp`` in the
same folder and renamed over ``<name>`` only when complete, so a kill, a full disk or an error at any
moment leaves either the old file or the new one. The temporary is removed on every failure path that
Python sees; after a kill -9 it is swept by :func:`sweep_temps` on the next run (its process is gone).
File system failures come out as :class:`~roomtone.errors.StorageError` naming the path and the reason
("no space left on device", "permission denied").
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from roomtone.errors import OutputExistsError, ParameterError, RoomtoneError, StorageError

# .<name>.<pid>.tmp or .<name>.<pid>.tmp.<ext> (a kept suffix, for writers that append one)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(?:\.[A-Za-z0-9]+)?$")
_LOW_SPACE = 1 << 16  # bytes: a write that fails with less free than this failed for lack of space

_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EROFS: "read-only file system", errno.ENOTDIR: "a path component is a file, not a folder",
            errno.EISDIR: "is a folder, not a file", errno.ENOENT: "no such file or folder",
            errno.EEXIST: "already exists", errno.ENAMETOOLONG: "file name too long"}


def temp_path(path: str | os.PathLike, *, keep_suffix: bool = False) -> Path:
    """The temporary name of ``path`` for this process: ``.<name>.<pid>.tmp`` (``.tmp<suffix>`` kept
    last with ``keep_suffix=True``, for libraries that insist on an extension)."""
    path = Path(path)
    if keep_suffix and path.suffix:
        return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def sweep_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` (not recursive) left by processes that are gone; returns them."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m is None or int(m["pid"]) == os.getpid() or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
    return removed


def storage_error(exc: BaseException, path: str | os.PathLike, *, action: str = "cannot write") -> StorageError:
    """``exc`` (an OSError, or a library error that hides one) as a StorageError naming ``path``."""
    path = Path(path)
    code = getattr(exc, "errno", None)
    reason = _REASONS.get(code) if code is not None else None
    if code in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            path, reason = blocker, "is a file where a folder is needed; choose another output folder"
    if reason is None and not _writable(path):
        reason, code = "the folder is not writable (permission denied or read-only)", errno.EACCES
    if reason is None and _free_bytes(path) < _LOW_SPACE:
        reason, code = _REASONS[errno.ENOSPC], errno.ENOSPC
    if reason is None:
        reason = f"{type(exc).__name__}: {exc}"
    hint = {errno.ENOSPC: "; free some space or choose another folder",
            errno.EDQUOT: "; free some space or choose another folder",
            errno.EACCES: "; choose a folder you can write to", errno.EROFS: "; choose a writable folder",
            errno.EPERM: "; choose a folder you can write to"}.get(code, "")
    err = StorageError(f"{path}: {action}: {reason}{hint}")
    err.errno = code
    return err


def io_failure(exc: BaseException, path: str | os.PathLike) -> StorageError | None:
    """A StorageError for ``exc`` when it is a file system failure (an OSError, or any error raised while
    the disk holding ``path`` is full or its folder not writable, as torch and libsndfile report those);
    None otherwise."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) or _free_bytes(Path(path)) < _LOW_SPACE or not _writable(Path(path)):
        return storage_error(exc, path)
    return None


def _writable(path: Path) -> bool:
    folder = path.parent if not path.is_dir() else path
    return not folder.exists() or os.access(folder, os.W_OK)


def _free_bytes(path: Path) -> int:
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            if p.exists():
                return shutil.disk_usage(p if p.is_dir() else p.parent).free
    return 1 << 62


def check_output(path: str | os.PathLike, *, overwrite: bool, kind: str = "file", name: str = "out") -> Path:
    """Refuse an output ``path`` that would replace a result without ``overwrite=True``, or that is a
    folder where a file is needed (``kind="file"``) or a file where a folder is needed (``kind="dir"``)."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ParameterError(f"{name}={str(path)!r} is a folder; give a file name")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ParameterError(f"{name}={str(path)!r} is a file; give a folder")
    if kind == "file" and path.exists() and not overwrite:
        raise OutputExistsError(f"{name}={str(path)!r} exists; pass overwrite=True to replace it")
    return path


def make_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p`` with file system failures as StorageError naming the folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"{path}: is a file, not a folder; choose another output folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path, action="cannot create folder") from exc
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, keep_suffix: bool = False, sweep: bool = True) -> Iterator[Path]:
    """Context manager: yields a temporary path next to ``path``; the caller writes it (a file or a
    folder); on a clean exit it replaces ``path``. On any error the temporary is removed and file system
    failures are raised as StorageError. ``sweep`` first removes stale temporaries of dead processes."""
    path = Path(path)
    make_dir(path.parent)
    if sweep:
        sweep_temps(path.parent)
    tmp = temp_path(path, keep_suffix=keep_suffix)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"atomic write of {path}: nothing was written to {tmp}")
        if path.is_dir() and not tmp.is_dir():
            raise ParameterError(f"{str(path)!r} is a folder; give a file name")
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink(missing_ok=True)
        if isinstance(exc, RoomtoneError) or not isinstance(exc, Exception):
            raise
        failure = io_failure(exc, path)
        if failure is not None:
            raise failure from exc
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where not supported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager for a folder written as a whole: yields an empty staging folder next to ``path``;
    on a clean exit the staging folder takes the place of ``path`` in one rename (an existing ``path`` is
    exchanged with it atomically on Linux, then removed; entries of the old folder that the new one does
    not have, e.g. a feature cache, are moved over). On any error the staging folder is removed and an
    existing ``path`` is left as it was."""
    path = Path(path)
    make_dir(path.parent)
    sweep_temps(path.parent)
    stage = temp_path(path)
    if stage.exists():
        shutil.rmtree(stage)
    make_dir(stage)
    try:
        yield stage
        if path.exists():
            if not _exchange(stage, path):  # two renames: a kill in between leaves the old folder at ``stage``
                old = path.with_name(f".{path.name}.old.{os.getpid()}.tmp")
                os.replace(path, old)
                os.replace(stage, path)
                stage = old
            for entry in stage.iterdir():  # ``stage`` now holds the old folder
                if not (path / entry.name).exists():
                    os.replace(entry, path / entry.name)
            shutil.rmtree(stage, ignore_errors=True)
        else:
            os.replace(stage, path)
    except BaseException as exc:
        if stage.exists() and stage != path:
            shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, RoomtoneError):
            raise storage_error(exc, path) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int | None = 2, **kwargs) -> Path:
    """``json.dumps(obj)`` written to ``path`` atomically (a trailing newline); returns ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, **kwargs) + "\n")


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """``fig.savefig`` to ``path`` atomically (the format taken from the suffix of ``path``)."""
    path = Path(path)
    fmt = kwargs.pop("format", path.suffix.lstrip(".") or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)
    return path
