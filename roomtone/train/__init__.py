"""roomtone.train: fit loop (resumable, torchrun-ready), evaluate, predict, export.

    from roomtone.train import fit, evaluate, load_run
    summary = fit(TrainConfig(epochs=10), data_dir="prepared/", out_dir="runs/a")
    metrics = evaluate("runs/a", split="test")
"""

from __future__ import annotations

from roomtone.lazy import lazy_exports

# Lazy: importing roomtone.train stays cheap (the CLI imports every command module).
_EXPORTS = {"fit": "loop", "read_metrics": "loop", "predict_dataset": "loop", "evaluate": "evaluate",
            "load_run": "run", "build_model": "run", "predict_files": "predict", "predict_waveform": "predict",
            "export_model": "export"}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

# `roomtone.train.evaluate` is the function (the contract), not the submodule of the same name.
from roomtone.train.evaluate import evaluate  # noqa: E402, F401
