"""Lazy public namespaces: a stage package re-exports its user-facing names without importing them (and torch)
until first use, as librosa's namespace does."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` whose public name ``n`` is defined in its submodule
    ``exports[n]``; an unknown name raises ``AttributeError`` as a missing attribute does."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
