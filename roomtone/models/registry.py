"""Model registry (timm-like): ``register_model``, ``create_model``, ``list_models``.

A registered entry is a factory ``fn(*, num_classes, in_chans=1, **kwargs) -> nn.Module``. Every model
takes a waveform ``(batch, time)`` at ``model.sr`` and returns logits ``(batch, num_classes)``; it has
``frontend``, ``forward_features``, ``forward_head`` and ``reset_classifier(num_classes)``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

from roomtone.errors import ParameterError

_REGISTRY: dict[str, Callable] = {}


def register_model(fn: Callable | None = None, *, name: str | None = None) -> Callable:
    """Register a model factory under ``name`` (default: the function's name).

    Usable bare (``@register_model``) or with a name (``@register_model(name="vgg_tiny")``).
    Registering the same name again replaces the old entry (so reloading a module is harmless).
    """

    def deco(f: Callable) -> Callable:
        key = name or f.__name__
        if not isinstance(key, str) or not key:
            raise ParameterError(f"model name {key!r} must be a non-empty string")
        _REGISTRY[key] = f
        return f

    return deco(fn) if fn is not None else deco


def _ensure_builtin() -> None:
    # Importing the model modules fills the registry; optional ones (helper-owned) may be absent.
    import importlib

    for mod in ("roomtone.models.vgg", "roomtone.models.effnet", "roomtone.models.panns", "roomtone.models.aisfx",
                "roomtone.models.speech_embedding", "roomtone.models.pretrained"):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a glob ``pattern`` (``"vgg*"``)."""
    _ensure_builtin()
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def is_model(name: str) -> bool:
    _ensure_builtin()
    return name in _REGISTRY


def _accepted_arguments(factory, exc: TypeError) -> list[str]:
    """The keyword arguments of what raised ``exc`` (the factory, or the class it forwards to)."""
    import inspect
    import sys

    target = factory
    m = re.match(r"(\w+)\.__init__\(\)", str(exc))
    if m is not None:
        target = getattr(sys.modules.get(getattr(factory, "__module__", ""), None), m.group(1), factory)
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]


def create_model(name: str, *, num_classes: int, **kwargs):
    """Build a registered model: ``create_model("vgg", num_classes=10, sr=8000, n_mels=64)``.

    The returned module records how it was built in ``model.model_config`` (a plain dict with ``name``,
    ``num_classes`` and the keyword arguments), which is what a run's ``config.yaml`` stores.

    Raises:
        ParameterError: unknown name (the message lists the registered ones) or bad ``num_classes``.
    """
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ParameterError(f"model {name!r} is not registered; registered models: {sorted(_REGISTRY)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
    factory = _REGISTRY[name]
    try:
        model = factory(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        bad = re.search(r"argument '(\w+)'", str(exc))
        raise ParameterError(f"model {name!r} has no argument {bad.group(1) if bad else '?'!r}; "
                             f"its arguments are {_accepted_arguments(factory, exc)}") from exc
    if not hasattr(model, "model_config"):
        model.model_config = {"name": name, "num_classes": num_classes, **kwargs}
    else:
        model.model_config = {**model.model_config, "name": name, "num_classes": num_classes}
    return model
