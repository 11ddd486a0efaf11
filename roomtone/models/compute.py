"""Compute of a model: parameters, multiply-accumulates (MACs) and FLOPs per second of audio, and the
measured seconds per training step on this machine.

MACs are counted exactly with forward hooks on every ``Conv1d``/``Conv2d``/``Linear``: a conv output
element costs ``in_channels / groups * prod(kernel)`` MACs, a linear one ``in_features``; FLOPs = 2 x MACs
(biases, norms, activations and pooling are not counted: they are a few percent of a conv net). The front
end (STFT, mel projection) is not counted either: it is the same for every model with the same front end.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from torch import nn

from roomtone.errors import ParameterError

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Linear)
#: The layout training keeps 4-D weights in (and so 2-D conv activations): channels last. mkldnn (CPU) and cuDNN
#: pick their faster channels-last kernels for it; a training step of the recipe's VGGs took 20-40 % less time on
#: 2 CPU cores (batch 32 x 1 s at 8 kHz; outputs equal up to float summation order).
TRAINING_MEMORY_FORMAT = torch.channels_last


#: Devices whose AdamW runs as one fused kernel over all parameters (``torch.optim.AdamW(fused=True)``, CPU since
#: torch 2.4): the same update as the per-tensor loop up to float rounding. The recipe's small VGG (60k parameters
#: in 30 tensors) on 2 CPU cores: 1.14 -> 0.28 ms per step (~2 % of its training step); the full size 1.4 -> 0.44 ms.
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def adamw(params, *, lr: float) -> torch.optim.AdamW:
    """The training loop's optimizer (and :func:`step_seconds`'): AdamW over ``params`` (tensors or parameter
    groups), fused where the parameters' device supports it (:data:`FUSED_ADAMW_DEVICES`)."""
    params = list(params)
    tensors = [t for g in params for t in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(tensors) and all(t.device.type in FUSED_ADAMW_DEVICES and t.is_floating_point() for t in tensors)
    return torch.optim.AdamW(params, lr=lr, fused=fused or None)


def to_training_layout(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D parameters and buffers in :data:`TRAINING_MEMORY_FORMAT` (in place; returned).
    ``state_dict`` values keep their numbers, so checkpoints load into a model in either layout."""
    return model.to(memory_format=TRAINING_MEMORY_FORMAT)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one call of a counted layer that produced ``output`` (0 for any other module)."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        k = 1
        for s in module.kernel_size:
            k *= int(s)
        return output.numel() * (module.in_channels // module.groups) * k
    return 0


def count_macs(model: nn.Module, *args, **kwargs) -> dict[str, int]:
    """MACs of ``model(*args, **kwargs)`` per counted layer (``{qualified name: MACs}``; a layer called
    twice is summed), in eval mode without gradients. The total is ``sum(result.values())``."""
    counts: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, COUNTED):
            def hook(mod, _inp, out, _name=name or type(m).__name__):
                counts[_name] = counts.get(_name, 0) + layer_macs(mod, out)
            handles.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return counts


def _example(model: nn.Module, *, seconds: float, batch: int = 1) -> torch.Tensor:
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ParameterError(f"seconds={seconds!r} must be a positive number")
    sr = getattr(model, "sr", None)
    if not sr:
        raise ParameterError("the model has no `sr`: compute per second of audio needs a waveform model")
    device = next(model.parameters()).device
    n = max(2, int(round(seconds * sr)))
    t = torch.arange(n, dtype=torch.float32, device=device) / sr
    return (0.1 * torch.sin(2 * torch.pi * 440.0 * t)).expand(batch, n).contiguous()


def compute_profile(model: nn.Module, *, seconds: float = 1.0) -> dict:
    """``{"flops_per_second", "macs_per_second", "params", "seconds", "by_layer"}`` of a waveform model
    (``model.sr``), counted on one clip of ``seconds`` seconds. ``by_layer`` = MACs per counted layer."""
    by_layer = count_macs(model, _example(model, seconds=seconds))
    macs = sum(by_layer.values())
    return {"flops_per_second": 2 * macs / seconds, "macs_per_second": macs / seconds,
            "params": count_parameters(model), "seconds": float(seconds), "by_layer": by_layer}


def step_seconds(model: nn.Module, *, batch_size: int = 32, seconds: float = 1.0, steps: int = 3,
                 warmup: int = 1, lr: float = 1e-3, spec_transform=None, autocast: torch.dtype | None = None,
                 between=None) -> float:
    """Median wall seconds of one training step (forward, cross-entropy, backward, AdamW step) of ``model``
    on a batch of ``batch_size`` clips of ``seconds`` s, on the model's device and in its layout (the training
    loop's is :func:`to_training_layout`), after ``warmup`` steps. ``spec_transform`` (e.g. SpecAugment) is
    passed to ``model(x, spec_transform=...)`` as the fit loop does. ``autocast`` (e.g. ``torch.bfloat16``) runs
    the forward under ``torch.autocast`` of the model's device in that dtype, as ``TrainConfig(amp="on")`` does.
    ``between()`` (untimed) runs before every step, e.g. a data batch fetched as in the fit loop: a step timed in
    a tight loop finds the caches warm that a real step finds filled with the last batch's audio.

    For a time budget: ``steps_in_budget = budget / step_seconds(...)``. The model's weights are restored
    afterwards (its optimizer is a throwaway), so a fresh model can be measured and then trained.
    """
    for name, v in (("batch_size", batch_size), ("steps", steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ParameterError(f"{name}={v!r} must be a positive integer")
    if not isinstance(warmup, int) or warmup < 0:
        raise ParameterError(f"warmup={warmup!r} must be a non-negative integer")
    x = _example(model, seconds=seconds, batch=batch_size)
    x = x + 0.01 * torch.linspace(-1, 1, x.shape[-1], device=x.device)  # not all rows identical in value
    n_classes = int(getattr(model, "num_classes", 0) or 0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was = model.training
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr=lr)
    cuda = x.device.type == "cuda"
    times = []
    model.train()
    try:
        for i in range(warmup + steps):
            if between is not None:
                between()
            t0 = time.perf_counter()
            with contextlib.nullcontext() if autocast is None else torch.autocast(x.device.type, dtype=autocast):
                out = model(x) if spec_transform is None else model(x, spec_transform=spec_transform)
            y = torch.arange(batch_size, device=x.device) % max(n_classes, out.shape[-1])
            loss = nn.functional.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if cuda:
                torch.cuda.synchronize(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        model.load_state_dict(state)
        model.train(was)
        for p in model.parameters():
            p.grad = None
    return statistics.median(times)
