"""Seconds per optimizer step of a config's model on this machine, for the recipe's time budget.

The model step is timed by :func:`roomtone.models.compute.step_seconds`; ``OVERHEAD`` covers what it leaves
out (decoding, augmentation, validation passes): the data path measured at ~15-27 % of training time
(issue 15's profile), plus the validation forward passes.
"""

from __future__ import annotations

import dataclasses

import torch

from roomtone.config import TrainConfig

OVERHEAD = 1.3
#: The training time budget of ``roomtone train`` and ``roomtone expect`` when none is given: on 2 CPU cores a
#: recipe's run then ends within ~20 minutes (steps are capped from timed steps, with ``OVERHEAD``).
#: ``recipe()`` itself has no default budget (the same data gives the same recipe on any machine).
DEFAULT_BUDGET_S = 15 * 60.0


def seconds_per_step(config: TrainConfig, *, num_classes: int, seed: int = 0) -> float:
    """Wall seconds of one training step of ``config``'s model (batch ``config.batch_size`` x
    ``config.clip_seconds``, 1 s if None) on this machine, times ``OVERHEAD``."""
    from roomtone.models import create_model
    from roomtone.models.compute import step_seconds, to_training_layout

    frontend = dataclasses.asdict(config.frontend.resolved())   # the recipe always sets frontend.sr
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(config.model, num_classes=num_classes, **frontend, **(config.model_kwargs or {}))
    to_training_layout(model)
    return OVERHEAD * step_seconds(model, batch_size=config.batch_size, seconds=config.clip_seconds or 1.0)
