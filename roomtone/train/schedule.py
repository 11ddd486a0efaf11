"""Learning-rate schedules of the fit loop, and the time budget that may shorten one mid-run.

With ``TrainConfig.max_seconds`` the loop keeps to that many training seconds (its own clock): at every epoch end
after the first (the first decodes every clip once, so it is not the rate of the rest) it measures the seconds per
step and per validation pass (the slower of their mean so far and the latest epoch's), and when the steps planned
would not fit in the time left it cuts them to what does (:func:`steps_in_time`) and re-plans the schedule to the
new total (:func:`make_scheduler` with ``done_steps``): the run still ends on the annealed, low-lr part of its
schedule. Steps are only ever cut, never added, so a run that fits is the same run as without a budget, byte for
byte.
"""

from __future__ import annotations

import math

import torch

from roomtone.config import TrainConfig


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int, steps_per_epoch: int,
                   *, done_steps: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """``config.schedule`` over ``total_steps`` optimizer steps. ``done_steps > 0`` re-plans a running schedule:
    the new one is stepped to ``done_steps``, so the lr (and one-cycle momentum) are those a run planned for
    ``total_steps`` from the start has there."""
    if config.schedule == "onecycle":
        # torch's OneCycleLR divides by zero for 4 total steps (its warm-up phase would last 0 steps): runs that
        # short get the schedule of an 8-step run, of which they take the first steps. Each parameter group
        # peaks at its own lr (a fine-tuned backbone at lr * backbone_lr_scale); a re-planned schedule at the peak
        # its first one stored in the group.
        max_lr = [g.get("max_lr", g["lr"]) for g in optimizer.param_groups]
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(total_steps, 8),
                                                    pct_start=0.25, anneal_strategy="cos",
                                                    div_factor=25.0, final_div_factor=1e3)
    elif config.schedule == "cosine":
        warm = max(1, int(round(config.warmup_epochs * steps_per_epoch)))

        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, total_steps - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, f)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    for _ in range(done_steps):
        sched.step()
    return sched


def steps_in_time(max_seconds: float, *, spent_s: float, done: int, step_s: float, valid_s: float,
                  steps_per_epoch: int, total_steps: int) -> int:
    """The run's total steps under ``max_seconds``, at an epoch end: ``done`` steps taken in ``spent_s`` seconds,
    each further step costing ``step_s`` and each further epoch end (a last partial epoch's too) one validation
    pass of ``valid_s``. Between ``done`` (the time is spent) and ``total_steps`` (it fits)."""
    left = float(max_seconds) - float(spent_s)
    per_epoch = steps_per_epoch * step_s + valid_s
    if per_epoch <= 0:
        return int(total_steps)
    whole = max(0, int(left // per_epoch))
    rest = left - whole * per_epoch
    partial = 0 if step_s <= 0 else min(steps_per_epoch - 1, max(0, int((rest - valid_s) // step_s)))
    return int(max(done, min(total_steps, done + whole * steps_per_epoch + partial)))
