"""Worker pools that die with their parent: no orphan keeps running (and holding memory) after the
process that started it is killed, kill -9 included.

:func:`process_pool` is a ``concurrent.futures.ProcessPoolExecutor`` whose workers first call
:func:`die_with_parent`: on Linux the kernel sends them SIGKILL when their parent exits
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the parent's pid and exits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, every: float) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(every)


def die_with_parent(parent: int | None = None, *, every: float = 0.5) -> None:
    """Make this (worker) process exit when ``parent`` (default: its parent now) is gone."""
    parent = os.getppid() if parent is None else parent
    if not _set_pdeathsig():
        threading.Thread(target=_watch_parent, args=(parent, every), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _init(parent: int, initializer, initargs) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def process_pool(max_workers: int, *, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor of ``max_workers`` whose workers die with this process, then run
    ``initializer(*initargs)``."""
    return ProcessPoolExecutor(max_workers=max_workers, initializer=_init,
                               initargs=(os.getpid(), initializer, tuple(initargs)))
