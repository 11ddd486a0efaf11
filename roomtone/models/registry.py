"""Model registry (timm-like): ``register_model``, ``create_model``, ``list_models``.

A registered entry is a factory ``fn(*, num_classes, in_chans=1, **kwargs) -> nn.Module``. Every model
takes a waveform ``(batch, time)`` at ``model.sr`` and returns logits ``(batch, num_classes)``, and has the
same contract: ``frontend``, ``sr``, ``forward_features(x)`` (the unpooled map, time last),
``forward_head(map, pre_logits=False)`` (pooled embedding with ``pre_logits``), ``get_classifier()`` and
``reset_classifier(num_classes)``. Pre-trained weights come through one door:
``create_model(name, pretrained=True, num_classes=...)``, where ``name`` is a catalogue name
(``roomtone.models.pretrained.CATALOG``: registry names equal catalogue names).

Every model module in :data:`MODEL_MODULES` is imported when this module is (an import error surfaces as
itself, not as "not registered"), and registering a name twice is refused.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable

from roomtone.errors import ParameterError

_REGISTRY: dict[str, Callable] = {}

#: The modules whose import registers the built-in models.
MODEL_MODULES = ("roomtone.models.vgg", "roomtone.models.effnet", "roomtone.models.tcnet", "roomtone.models.panns", "roomtone.models.aisfx",
                 "roomtone.models.speech_embedding")


def register_model(fn: Callable | None = None, *, name: str | None = None) -> Callable:
    """Register a model factory under ``name`` (default: the function's name).

    Usable bare (``@register_model``) or with a name (``@register_model(name="vgg_tiny")``). A name that
    is already taken by another factory is a ParameterError (re-importing the same module is harmless).
    """

    def deco(f: Callable) -> Callable:
        key = name or f.__name__
        if not isinstance(key, str) or not key:
            raise ParameterError(f"model name {key!r} must be a non-empty string")
        old = _REGISTRY.get(key)
        if old is not None and (old.__module__, old.__qualname__) != (f.__module__, f.__qualname__):
            raise ParameterError(f"model name {key!r} is already registered by {old.__module__}.{old.__qualname__}; "
                                 f"choose another name for {f.__module__}.{f.__qualname__}")
        _REGISTRY[key] = f
        return f

    return deco(fn) if fn is not None else deco


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a glob ``pattern`` (``"vgg*"``)."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def is_model(name: str) -> bool:
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


def create_model(name: str, *, num_classes: int, pretrained: bool = False, cache_dir=None, **kwargs):
    """Build a registered model: ``create_model("vgg", num_classes=10, sr=8000, n_mels=64)``.

    ``pretrained=True`` loads the backbone weights of catalogue entry ``name`` from the cache (fetching
    them when absent; see ``roomtone pretrained fetch``) and keeps a fresh ``num_classes`` classifier
    (PANNs keep the AudioSet classifier when ``num_classes=527``). ``cache_dir`` overrides the cache.
    The returned module records how it was built in ``model.model_config`` (``name``, ``num_classes`` and
    the keyword arguments; not ``pretrained``: a trained run stores its own weights).

    Raises:
        ParameterError: unknown name (the message lists the registered ones), bad ``num_classes``, an
            argument the model does not take, or ``pretrained=True`` for a name without weights.
    """
    if name not in _REGISTRY:
        raise ParameterError(f"model {name!r} is not registered; registered models: {sorted(_REGISTRY)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ParameterError(f"num_classes={num_classes!r} must be a positive integer")
    if pretrained:
        from roomtone.models.pretrained import CATALOG

        if name not in CATALOG:
            raise ParameterError(f"pretrained=True: model {name!r} has no pre-trained weights; "
                                 f"models with weights: {sorted(CATALOG)}")
    factory = _REGISTRY[name]
    try:
        model = factory(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        bad = re.search(r"argument '(\w+)'", str(exc))
        raise ParameterError(f"model {name!r} has no argument {bad.group(1) if bad else '?'!r}; "
                             f"its arguments are {_accepted_arguments(factory, exc)}") from exc
    if pretrained:
        from roomtone.models.pretrained import load_backbone

        load_backbone(name, model, cache_dir=cache_dir)
    if not hasattr(model, "model_config"):
        model.model_config = {"name": name, "num_classes": num_classes, **kwargs}
    else:
        model.model_config = {**model.model_config, "name": name, "num_classes": num_classes}
    return model


for _module in MODEL_MODULES:
    importlib.import_module(_module)
