"""Compute report of a training run: FLOPs per second of audio, parameters, achieved GFLOP/s and the
share of training time spent outside the model. The fit loop brackets each step's model work (forward,
loss, backward, optimizer step) with :meth:`ComputeMeter.start` / :meth:`ComputeMeter.stop` and calls
:meth:`ComputeMeter.finish` once at the end (prints a line, adds ``"compute"`` to ``run.json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

from roomtone.models.compute import compute_profile

# training FLOPs ~ 3 x forward FLOPs: the backward pass costs about twice the forward (grads of inputs and weights)
TRAIN_FLOPS_FACTOR = 3.0


class ComputeMeter:
    """Accumulates model seconds and audio seconds of the training steps of this process.

    Args:
        model: the (unwrapped) waveform model, with ``sr``.
        seconds_before: training seconds already spent before this process (a resumed run).
    """

    def __init__(self, model: nn.Module, *, seconds_before: float = 0.0):
        prof = compute_profile(model)
        self.flops_per_second = float(prof["flops_per_second"])
        self.params = int(prof["params"])
        self.sr = int(model.sr)
        self.seconds_before = float(seconds_before)
        self.model_seconds = 0.0
        self.audio_seconds = 0.0
        self.steps = 0
        self._t0: float | None = None
        self._device: torch.device | None = None

    def start(self, x: torch.Tensor) -> None:
        """Before the forward pass of a step on batch ``x`` ``(batch, time)``."""
        self._device = x.device
        self._sync()
        self._t0 = time.perf_counter()
        self.audio_seconds += x.numel() / self.sr if x.dim() >= 2 else x.shape[-1] / self.sr

    def stop(self) -> None:
        """After the optimizer step."""
        if self._t0 is None:
            return
        self._sync()
        self.model_seconds += time.perf_counter() - self._t0
        self.steps += 1
        self._t0 = None

    def _sync(self) -> None:
        if self._device is not None and self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def summary(self, *, train_seconds: float) -> dict:
        """``{"flops_per_audio_second", "params", "steps", "model_seconds", "achieved_gflops",
        "outside_model_share"}``; ``train_seconds`` = the loop's clock (steps, validation, checkpoints)."""
        own = max(float(train_seconds) - self.seconds_before, 1e-9)
        flops = TRAIN_FLOPS_FACTOR * self.flops_per_second * self.audio_seconds
        return {"flops_per_audio_second": self.flops_per_second, "params": self.params, "steps": self.steps,
                "model_seconds": round(self.model_seconds, 3),
                "achieved_gflops": round(flops / max(self.model_seconds, 1e-9) / 1e9, 3) if self.steps else None,
                "outside_model_share": round(max(0.0, 1.0 - self.model_seconds / own), 4) if self.steps else None}

    def finish(self, out_dir: str | Path | None, *, train_seconds: float, console=None) -> dict:
        """The summary; printed on ``console`` and stored under ``"compute"`` in ``out_dir/run.json``."""
        from roomtone.train.checkpoint import atomic_write_text

        s = self.summary(train_seconds=train_seconds)
        if console is not None:
            console.print(format_compute(s))
        if out_dir is not None and (Path(out_dir) / "run.json").exists():
            path = Path(out_dir) / "run.json"
            info = json.loads(path.read_text())
            info["compute"] = s
            atomic_write_text(path, json.dumps(info, indent=2, default=str))
        return s


def format_compute(s: dict) -> str:
    """One line: ``compute: 16.1 MFLOP per s of audio, 9,050 params; 21.4 GFLOP/s in the model; 35 % ...``."""
    line = f"compute: {s['flops_per_audio_second'] / 1e6:.1f} MFLOP per s of audio (forward), {s['params']:,} params"
    if s.get("achieved_gflops") is not None:
        line += (f"; training ran at {s['achieved_gflops']:.3g} GFLOP/s in the model; "
                 f"{100 * s['outside_model_share']:.0f} % of training time outside the model "
                 f"(data, augmentation, validation, checkpoints)")
    return line
