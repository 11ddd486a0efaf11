"""Seconds per optimizer step of a config's model on this machine, timed on a few random batches.

The recipe divides its time budget by this to cap the step count. ``OVERHEAD`` covers what the timed
model step leaves out (decoding, augmentation, validation passes): measured at ~15 % on FSDD (issue 15's
profile) plus the validation forward passes.
"""

from __future__ import annotations

import time

import torch

from roomtone.config import TrainConfig

OVERHEAD = 1.3


def seconds_per_step(config: TrainConfig, *, num_classes: int, steps: int = 3, seed: int = 0) -> float:
    """Median wall seconds of ``steps`` training steps (forward, backward, AdamW) after one warm-up step,
    times ``OVERHEAD``. Batches are random audio of ``config.batch_size`` x ``config.clip_seconds`` (1 s if None)."""
    from roomtone.train.run import build_model, model_config_of

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(model_config_of(config, num_classes=num_classes))
    model.train()
    n = int(round((config.clip_seconds or 1.0) * model.sr))
    x = 0.1 * torch.randn(config.batch_size, n, generator=g)
    y = torch.randint(0, num_classes, (config.batch_size,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    times.sort()
    return float(times[len(times) // 2] * OVERHEAD)
