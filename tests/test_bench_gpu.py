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


def test_every_table_builds_on_the_cpu():
    """The suite's code path, device-generic, at its smoke sizes: each table has a row per case, with numbers, and
    the fit loop ran the steps asked on the device given."""
    lines = bench_gpu.sections(torch.device("cpu"), sizes=bench_gpu.SMOKE)
    tables = "\n".join(lines).split("\n\n")
    heads = [t.splitlines()[0] for t in tables if t.strip()]
    assert [h.split("|")[1].strip().split(" ")[0] for h in heads] == ["front", "augmentation", "model", "fit"]
    rows = {h: [r for r in t.splitlines()[2:]] for h, t in zip(heads, (t for t in tables if t.strip()), strict=True)}
    n_train = len(bench_gpu.TRAIN_MODELS) * 2 * len(bench_gpu.SMOKE["train_batches"])
    assert [len(r) for r in rows.values()] == [2, 2, n_train, len(bench_gpu.SMOKE["fit_workers"])]
    for r in (r for rs in rows.values() for r in rs):
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert float(cells[-1].rstrip("%")) >= 0, r  # the last column is a number (a rate or a share)
    fit_row = [c.strip() for c in rows[heads[-1]][0].strip("|").split("|")]
    assert fit_row[1:4] == ["0", "float32 (amp auto)", str(bench_gpu.SMOKE["fit_steps"])]
