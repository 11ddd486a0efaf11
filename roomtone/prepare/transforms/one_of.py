"""OneOf: apply one transform chosen at random per example."""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.transforms.base import Transform, check_sources, pick, uniform


class OneOf(Transform):
    """Apply one of ``transforms`` per example (chosen with ``weights``, default equal), with probability ``p``.

    Params per example: ``{"applied": ..., "choice": k, "name": ..., "params": {...}}``.
    """

    def __init__(self, transforms, *, weights=None, p: float = 1.0, seed: int = 0):
        transforms = list(transforms)
        if not transforms:
            raise ParameterError("OneOf needs at least one transform")
        w = [1.0] * len(transforms) if weights is None else [float(v) for v in weights]
        if len(w) != len(transforms) or any(v < 0 for v in w) or sum(w) <= 0:
            raise ParameterError(f"weights={weights!r} must be {len(transforms)} non-negative numbers, not all 0")
        srs = {t.sr for t in transforms if t.sr is not None}
        super().__init__(p=p, sr=srs.pop() if len(srs) == 1 else None, seed=seed)
        self.transforms = transforms
        total = sum(w)
        self.cum = [sum(w[: i + 1]) / total for i in range(len(w))]

    def draw(self, x, *, generator, sources=None):
        """Per-example parameters without applying: whether it runs, which transform, then each transform's
        draws on the examples that chose it (in transform order)."""
        b = x.shape[0]
        sources = None if sources is None else check_sources(sources, b)
        applied = [u < self.p for u in uniform(generator, b, 0.0, 1.0)]
        choice = [next(k for k, c in enumerate(self.cum) if u < c or k == len(self.cum) - 1)
                  for u in uniform(generator, b, 0.0, 1.0)]
        params: list[dict] = [{"applied": False} for _ in range(b)]
        for k, t in enumerate(self.transforms):
            idx = [i for i in range(b) if applied[i] and choice[i] == k]
            if idx:
                drawn = t.draw(x[torch.tensor(idx, device=x.device)], generator=generator, sources=pick(sources, idx))
                for i, prm in zip(idx, drawn, strict=True):
                    params[i] = {"applied": True, "choice": k, "name": t.name, "params": prm}
        return params

    def apply(self, x, params, lengths):
        out = x.clone()
        for k, t in enumerate(self.transforms):
            idx = [i for i, p in enumerate(params) if p["choice"] == k]
            if idx:
                sel = torch.tensor(idx, device=x.device)
                sub_len = None if lengths is None else torch.as_tensor(lengths)[sel.cpu()]
                out[sel] = t.replay(x[sel], [params[i]["params"] for i in idx], lengths=sub_len).to(x.dtype)
        return out
