"""Export a trained model to ONNX or TorchScript: waveform ``(batch, time)`` at ``sr`` in, class scores
(softmax probabilities) ``(batch, num_classes)`` out, front end included. The exported file is run on
check inputs of several lengths and compared with the torch model before success is reported."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from roomtone.errors import ExportError, MissingDependencyError, ParameterError, RoomtoneError
from roomtone.files import atomic_path, atomic_write_json, check_output, io_failure

FORMATS = ("onnx", "torchscript")


class ScoresModel(nn.Module):
    """``waveform (batch, time) -> softmax(model(waveform)) (batch, num_classes)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.sr = int(model.sr)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(waveform), dim=-1)


def _check_inputs(check_inputs, *, sr: int, min_samples: int) -> list[torch.Tensor]:
    if check_inputs is None:  # deterministic chirps of several lengths
        out = []
        for seconds in (0.05, 0.5, 1.0, 1.7):
            n = max(min_samples, int(seconds * sr))
            t = torch.arange(n, dtype=torch.float64) / sr
            out.append((0.3 * torch.sin(2 * np.pi * (200 + 800 * t) * t)).float())
        return out
    return [torch.as_tensor(x, dtype=torch.float32).reshape(-1) for x in check_inputs]


def _compare(run, reference: nn.Module, inputs: list[torch.Tensor], atol: float) -> float:
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            ref = reference(x[None]).numpy()
        got = np.asarray(run(x[None]))
        if got.shape != ref.shape:
            raise ExportError(f"exported model gave shape {got.shape} for input {tuple(x[None].shape)}; torch gave {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if not worst <= atol:
        raise ExportError(f"exported model differs from torch by {worst:.3g} > atol={atol:g} on the check inputs")
    return worst


def export_model(run_dir_or_model, *, format: str = "onnx", out: str | os.PathLike | None = None,
                 labels: list[str] | None = None, check_inputs=None, atol: float = 1e-4,
                 opset: int = 18, overwrite: bool = False) -> dict:
    """Export and verify. Returns ``{"path", "format", "sr", "labels", "max_abs_diff", "checked_lengths",
    "min_samples", "input", "output"}`` (also written next to the file as ``<file>.json``).

    Args:
        run_dir_or_model: a run directory (``out`` defaults to ``RUN/model.onnx`` / ``RUN/model.ts``), or a model.
        check_inputs: waveforms (1-D, at the model's rate) to compare on; default: chirps of 0.05/0.5/1/1.7 s
            (none shorter than ``min_samples``).
        atol: largest allowed absolute difference of the scores.
        overwrite: replace an existing ``out`` (else OutputExistsError). The file is written to a temp
            name and renamed: a failed export leaves no partial file and an existing one intact.

    ``min_samples`` in the report is the shortest input the file takes: 2 for the dynamo ONNX exporter (the
    model's padding of short input stays in the graph), else the length the network's pooling needs.
    Raises:
        ExportError: the export failed or the exported model does not match the torch model.
    """
    if format not in FORMATS:
        raise ParameterError(f"format={format!r} must be one of {list(FORMATS)}")
    if isinstance(run_dir_or_model, nn.Module):
        model = run_dir_or_model
        run_dir = None
        if out is None:
            raise ParameterError("out=None: give an output path when exporting a model object")
    else:
        from roomtone.train.run import load_run

        run_dir = Path(run_dir_or_model)
        model, labels, _config = load_run(run_dir)
    model = model.cpu().eval()
    out = Path(out) if out is not None else run_dir / ("model.onnx" if format == "onnx" else "model.ts")
    check_output(out, overwrite=overwrite)
    wrapper = ScoresModel(model).eval()
    sr = wrapper.sr
    # the shortest input the networks handle by themselves (shorter input is padded by the model); files
    # from the dynamo ONNX exporter keep that padding in the graph and take any input of 2 samples or more
    pooled = max(2, int(getattr(model, "min_samples", 0)),
                 int(getattr(model, "min_frames", 1)) * int(getattr(model.frontend, "hop_length", 1)))
    min_samples = pooled
    inputs = _check_inputs(check_inputs, sr=sr, min_samples=pooled)
    # batch 2 in the example: torch.export specialises a dimension of size 1
    n = max(int(sr), pooled)
    row = inputs[-1].repeat(n // inputs[-1].shape[0] + 1)[:n]
    example = torch.stack([row, row.flip(0)])
    with atomic_path(out) as tmp:
        try:
            if format == "onnx":
                if _export_onnx(wrapper, example, tmp, opset=opset) == "dynamo":
                    min_samples = 2
                    inputs = _check_inputs(check_inputs, sr=sr, min_samples=min_samples)  # 50 ms: padded in the graph
                run = _ort_runner(tmp)
            else:
                scripted = _export_torchscript(wrapper, example, inputs, atol)
                scripted.save(str(tmp))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    loaded = torch.jit.load(str(tmp))

                def run(x):
                    with torch.no_grad():
                        return loaded(x).numpy()
            worst = _compare(run, wrapper, inputs, atol)
        except RoomtoneError:
            raise
        except Exception as exc:  # noqa: BLE001 - a full disk stays a StorageError, anything else an ExportError
            failure = io_failure(exc, out)
            if failure is not None:
                raise failure from exc
            raise ExportError(f"{format} export failed: {type(exc).__name__}: {exc}") from exc
    report = {"path": str(out), "format": format, "sr": sr, "labels": labels, "max_abs_diff": worst,
              "atol": atol, "checked_lengths": [int(x.shape[0]) for x in inputs], "min_samples": min_samples,
              "input": "waveform float32 (batch, time) at sr", "output": "scores float32 (batch, num_classes), softmax"}
    atomic_write_json(out.with_name(out.name + ".json"), report)
    return report


def _export_onnx(wrapper: nn.Module, example: torch.Tensor, path: Path, *, opset: int) -> str:
    """Write ``path``; returns the exporter that worked: ``"dynamo"`` (symbolic batch and time, from 2
    samples up) or ``"legacy"`` (the TorchScript-based exporter, traced on ``example``)."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("ONNX export needs onnx, onnxscript and onnxruntime: "
                                     "pip install onnx onnxscript onnxruntime") from exc
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
            prog = torch.onnx.export(wrapper, (example,), dynamo=True, input_names=["waveform"],
                                     output_names=["scores"], dynamic_shapes={"waveform": {0: batch, 1: time}},
                                     opset_version=opset, verbose=False)
            prog.save(str(path))
            return "dynamo"
        except Exception:  # noqa: BLE001 - fall back to the TorchScript-based exporter
            torch.onnx.export(wrapper, (example,), str(path), dynamo=False, input_names=["waveform"],
                              output_names=["scores"], opset_version=max(17, min(opset, 18)),
                              dynamic_axes={"waveform": {0: "batch", 1: "time"}, "scores": {0: "batch"}})
            return "legacy"
        finally:
            for lg, lv in zip(quiet, levels, strict=True):
                lg.setLevel(lv)


def _ort_runner(path: Path):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("checking the ONNX file needs onnxruntime: pip install onnxruntime") from exc
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(x: torch.Tensor):
        return sess.run(None, {name: x.numpy().astype(np.float32)})[0]

    return run


def _export_torchscript(wrapper: nn.Module, example: torch.Tensor, inputs, atol: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scripted = torch.jit.script(wrapper)
            _compare(lambda x: scripted(x).detach().numpy(), wrapper, inputs, atol)
            return scripted
        except Exception:  # noqa: BLE001 - not scriptable: trace, then the caller checks other lengths
            return torch.jit.trace(wrapper, example, check_trace=False)
