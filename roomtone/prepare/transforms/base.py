"""The randomized-transform protocol shared by every transform in this package.

``out = t(audio, generator=g)``: ``audio`` is ``(batch, time)`` or ``(time,)`` float at ``t.sr``;
``sources`` (optional, one file path per example) names each example's own recording, so transforms that
draw from the user's own data (``AddBabble``) never mix an example with itself;
``g`` is a ``torch.Generator`` (CPU or CUDA; if omitted, the transform's own generator seeded with
``seed`` is used, never the global RNG). Each example is transformed with probability ``p``;
the parameters drawn for it are in ``t.last_params`` (one JSON-friendly dict per example, with
``"applied"``), and ``t.replay(audio, params)`` reproduces the output exactly, without randomness.
The same code runs on CPU tensors (DataLoader workers) and GPU batches; banks follow the batch's device.
"""

from __future__ import annotations

import os

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.noise import as_batch  # noqa: F401  (re-exported for the transforms)


def check_range(name: str, lo: float, hi: float, *, low: float | None = None, high: float | None = None) -> None:
    """``min_<name>``/``max_<name>`` must be ordered (and within bounds when given)."""
    if lo > hi:
        raise ParameterError(f"min_{name}={lo!r} > max_{name}={hi!r}: the range is reversed; give min <= max")
    if low is not None and lo < low:
        raise ParameterError(f"min_{name}={lo!r} must be >= {low}")
    if high is not None and hi > high:
        raise ParameterError(f"max_{name}={hi!r} must be <= {high}")


def uniform(g: torch.Generator, n: int, lo: float, hi: float) -> list[float]:
    """``n`` floats uniform in ``[lo, hi]`` from ``g`` (drawn on its device, returned as Python floats)."""
    u = torch.rand(n, generator=g, device=g.device, dtype=torch.float64).cpu()
    return (lo + (hi - lo) * u).tolist()


def integers(g: torch.Generator, n: int, high: int) -> list[int]:
    """``n`` integers in ``[0, high)`` from ``g``."""
    return torch.randint(0, high, (n,), generator=g, device=g.device).cpu().tolist()


def seeds(g: torch.Generator, n: int) -> list[int]:
    """``n`` seeds (for per-example noise that must be reproducible from the recorded parameters)."""
    return integers(g, n, 2**62)


def check_sources(sources, batch: int) -> list:
    """``sources`` as a list of ``batch`` paths (or Nones); None -> all None."""
    if sources is None:
        return [None] * batch
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [None if s is None else os.fspath(s) for s in sources]
    if len(sources) != batch:
        raise ParameterError(f"{len(sources)} sources for a batch of {batch}; give one path per example")
    return sources


def pick(sources: list, index: list[int]) -> list | None:
    """The sources of the examples ``index`` (None stays None)."""
    return None if sources is None else [sources[i] for i in index]


class Transform:
    """Base class: subclasses implement ``draw_params(x, g) -> list[dict]`` (one per example, all
    examples, always consuming the same random numbers) and ``apply(x, params, lengths) -> x`` on the
    examples that are applied. ``p`` is decided first, per example. Transforms whose draws depend on the
    examples' source files set ``uses_sources = True`` and take ``draw_params(x, g, sources)``. Draws read only
    the batch's shape and sources, never its samples: a batch can then be drawn example by example (each with its
    own generator, :meth:`roomtone.prepare.dataset.AudioDataset.__getitems__`) and applied at once."""

    uses_sources = False

    def __init__(self, *, p: float = 1.0, sr: int | None = None, seed: int = 0):
        if not 0.0 <= float(p) <= 1.0:
            raise ParameterError(f"p={p!r} must be a probability within [0, 1]")
        if sr is not None and (not isinstance(sr, int) or sr <= 0):
            raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
        self.p = float(p)
        self.sr = sr
        self.seed = int(seed)
        self.last_params: list[dict] = []
        self._generator: torch.Generator | None = None

    def __getstate__(self) -> dict:  # picklable for DataLoader workers (a torch.Generator is not)
        state = dict(self.__dict__)
        state["_generator"] = None
        return state

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.name}(p={self.p}, sr={self.sr})"

    def _own_generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def draw(self, x: torch.Tensor, *, generator: torch.Generator, sources=None) -> list[dict]:
        """Per-example parameters (``applied`` first, then the transform's own draws)."""
        b = x.shape[0]
        applied = uniform(generator, b, 0.0, 1.0)
        if self.uses_sources:
            params = self.draw_params(x, generator, check_sources(sources, b))
        else:
            params = self.draw_params(x, generator)
        return [dict(prm, applied=True) if u < self.p else {"applied": False} for u, prm in zip(applied, params, strict=True)]

    def draw_params(self, x: torch.Tensor, g: torch.Generator) -> list[dict]:
        return [{} for _ in range(x.shape[0])]

    def apply(self, x: torch.Tensor, params: list[dict], lengths: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, audio: torch.Tensor, *, generator: torch.Generator | None = None,
                 lengths: torch.Tensor | None = None, sources=None) -> torch.Tensor:
        x, squeeze = as_batch(audio)
        g = generator if generator is not None else self._own_generator()
        params = self.draw(x, generator=g, sources=sources)
        out = self._run(x, params, lengths)
        self.last_params = params
        return out[0] if squeeze else out

    def replay(self, audio: torch.Tensor, params: list[dict] | dict, *, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Apply recorded ``params`` (from ``last_params`` or a manifest) again: the same output, no randomness."""
        x, squeeze = as_batch(audio)
        if isinstance(params, dict):
            params = [params]
        if len(params) != x.shape[0]:
            raise ParameterError(f"{len(params)} parameter dicts for a batch of {x.shape[0]}")
        out = self._run(x, list(params), lengths)
        return out[0] if squeeze else out

    def _run(self, x: torch.Tensor, params: list[dict], lengths: torch.Tensor | None, **kw) -> torch.Tensor:
        idx = [i for i, prm in enumerate(params) if prm.get("applied", True)]
        if not idx:
            return x
        if len(idx) == x.shape[0]:
            return self.apply(x, params, lengths, **kw)
        sel = torch.tensor(idx, device=x.device)
        sub_len = None if lengths is None else torch.as_tensor(lengths, device=x.device)[sel]
        out = x.clone()
        out[sel] = self.apply(x[sel], [params[i] for i in idx], sub_len, **kw).to(x.dtype)
        return out
