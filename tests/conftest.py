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
