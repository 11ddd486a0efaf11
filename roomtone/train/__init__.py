"""roomtone.train: fit loop (resumable, torchrun-ready), evaluate, predict, export.

    from roomtone.train import fit, evaluate, load_run
    summary = fit(TrainConfig(epochs=10), data_dir="prepared/", out_dir="runs/a")
    metrics = evaluate("runs/a", split="test")
"""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy: importing roomtone.train stays cheap (the CLI imports every command module).
    if name in ("fit", "read_metrics", "predict_dataset"):
        from roomtone.train import loop

        return getattr(loop, name)
    if name == "evaluate":
        from roomtone.train.evaluate import evaluate

        return evaluate
    if name in ("load_run", "build_model"):
        from roomtone.train import run

        return getattr(run, name)
    if name in ("predict_files", "predict_waveform"):
        from roomtone.train import predict

        return getattr(predict, name)
    if name == "export_model":
        from roomtone.train.export import export_model

        return export_model
    raise AttributeError(f"module 'roomtone.train' has no attribute {name!r}")


__all__ = ["build_model", "evaluate", "export_model", "fit", "load_run", "predict_dataset", "predict_files",
           "predict_waveform", "read_metrics"]


# `roomtone.train.evaluate` is the function (the contract), not the submodule of the same name.
from roomtone.train.evaluate import evaluate  # noqa: E402
