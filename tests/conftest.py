"""Shared fixtures: the real audio in ``../shared/data`` (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ROOMTONE_SHARED_DATA", ROOT.parent / "shared" / "data"))
ARTIFACTS = ROOT / "test-artifacts"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# The user's weight cache (``~/.cache/roomtone``, or $ROOMTONE_CACHE) is read by the tests that port real
# weights (the ``user_cache`` fixture); everything else sees an empty cache, so that the recipe's transfer
# points (which use whatever backbones are cached) do not depend on what this machine has fetched.
USER_CACHE = Path(os.environ.get("ROOMTONE_CACHE") or Path.home() / ".cache" / "roomtone").expanduser()


@pytest.fixture(autouse=True)
def empty_weight_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ROOMTONE_CACHE", str(tmp_path_factory.getbasetemp() / "empty-cache"))


@pytest.fixture(scope="session")
def user_cache() -> Path:
    """The user's own roomtone cache (real fetched weights, when any)."""
    return USER_CACHE


def _need(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real audio not found at {path} (set ROOMTONE_SHARED_DATA to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need("")


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """``../shared/data/fsdd/recordings``: 3000 wav, ``{digit}_{speaker}_{take}.wav``, 8 kHz."""
    return _need("fsdd/recordings")


@pytest.fixture(scope="session")
def noise_dir() -> Path:
    """``../shared/data/noise`` with ``files.csv`` (split column)."""
    return _need("noise")


@pytest.fixture(scope="session")
def rir_dir() -> Path:
    """``../shared/data/rir`` with ``files.csv`` (split column)."""
    return _need("rir")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep artifacts worth looking at (screenshots, reports)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
