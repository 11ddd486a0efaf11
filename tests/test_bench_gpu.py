"""The GPU benchmark suite is a clean skip with a reason without CUDA (and the runner keeps the section)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's benchmarks/ package

from benchmarks import bench_gpu  # noqa: E402


def test_skips_with_a_reason_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA device" in bench_gpu.skip_reason()
    text = bench_gpu.run(quick=True)
    assert text.startswith("## GPU path") and "skipped: no CUDA device" in text
    assert "|" not in text  # no table, no number


def test_registered_as_a_suite():
    from benchmarks.__main__ import suites

    assert {"gpu", "time_to_accuracy"} <= set(suites())
