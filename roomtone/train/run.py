"""Build a model from a TrainConfig, and load a trained run back: ``load_run(run_dir) -> (model, labels, config)``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from roomtone.config import TrainConfig
from roomtone.errors import CheckpointError, ParameterError


def model_config_of(config: TrainConfig, *, num_classes: int, sr: int | None = None) -> dict:
    """The ``create_model`` call a config stands for: ``{"name", "num_classes", **frontend, **model_kwargs}``.

    ``sr``: the data's sample rate, used when ``config.frontend.sr`` is None (see ``FrontendConfig.resolved``).
    """
    kw = {k: v for k, v in dataclasses.asdict(config.frontend.resolved(sr=sr)).items()}
    kw.update(config.model_kwargs or {})
    return {"name": config.model, "num_classes": int(num_classes), **kw}


#: Registry names of earlier releases -> today's (runs trained before the rename still load).
RENAMED_MODELS = {"cnn6": "panns-cnn6", "cnn10": "panns-cnn10", "cnn14": "panns-cnn14"}


def build_model(model_config: dict) -> torch.nn.Module:
    """``create_model`` from a model_config dict (as stored in ``run.json``)."""
    from roomtone.models import create_model

    mc = dict(model_config)
    name = mc.pop("name", None)
    num_classes = mc.pop("num_classes", None)
    if name is None or num_classes is None:
        raise CheckpointError(f"model_config {model_config!r} lacks 'name' or 'num_classes'")
    name = RENAMED_MODELS.get(name, name)
    for k, v in list(mc.items()):  # YAML/JSON turn tuples into lists; the models accept either
        if isinstance(v, list) and v and all(isinstance(i, list) for i in v):
            mc[k] = [tuple(i) for i in v]
    return create_model(name, num_classes=int(num_classes), **mc)


def load_run(run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str | torch.device = "cpu"
             ) -> tuple[torch.nn.Module, list[str], TrainConfig]:
    """``(model in eval mode, labels, config)`` of a run directory written by :func:`roomtone.train.fit`.

    Args:
        checkpoint: ``"best"`` (default; falls back to ``"last"`` when no best exists) or ``"last"``,
            or a path to a ``.pt`` file.
    Raises:
        CheckpointError: not a run directory, or the weights do not match the model.
    """
    from roomtone.train.checkpoint import load_checkpoint, read_run_info

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: run directory not found")
    info = read_run_info(run_dir)
    cfg_path = run_dir / "config.yaml"
    config = TrainConfig.from_yaml(cfg_path) if cfg_path.exists() else TrainConfig()
    if checkpoint in ("best", "last"):
        path = run_dir / f"{checkpoint}.pt"
        if checkpoint == "best" and not path.exists():
            path = run_dir / "last.pt"
    elif str(checkpoint).endswith(".pt"):
        path = Path(checkpoint)
    else:
        raise ParameterError(f"checkpoint={checkpoint!r} must be 'best', 'last' or a .pt path")
    ck = load_checkpoint(path)
    model = build_model(info["model_config"])
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match model {info['model_config'].get('name')!r}: {exc}") from exc
    model.to(device).eval()
    return model, list(info["labels"]), config
