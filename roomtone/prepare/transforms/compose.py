"""Compose: apply transforms in sequence (the whole chain with probability ``p``)."""

from __future__ import annotations

import torch

from roomtone.prepare.transforms.base import Transform


class Compose(Transform):
    """Apply ``transforms`` one after the other, each with its own ``p``; the chain itself with ``p``.

    Params per example: ``{"applied": ..., "transforms": [{"name": ..., **params}, ...]}``.
    ``Compose([])`` is the identity (the ``clean`` condition).

    ``fuse=True``: a ``Reverberate`` directly followed by a ``SimulateMicrophone`` shares one FFT pair
    (see :mod:`.fused`: equal to the sequential result except within a few ms of the clip's end).
    The same random numbers are drawn either way.
    """

    def __init__(self, transforms, *, p: float = 1.0, fuse: bool = True, seed: int = 0):
        transforms = list(transforms)
        srs = {t.sr for t in transforms if t.sr is not None}
        super().__init__(p=p, sr=srs.pop() if len(srs) == 1 else None, seed=seed)
        self.transforms = transforms
        self.fuse = bool(fuse)

    def _steps(self):
        """``(j, fused)`` per step: transform ``j`` alone, or fused with ``j + 1``."""
        from roomtone.prepare.transforms.fused import fusable

        j, ts = 0, self.transforms
        while j < len(ts):
            pair = self.fuse and j + 1 < len(ts) and fusable(ts[j], ts[j + 1])
            yield j, pair
            j += 2 if pair else 1

    def _pair(self, j: int, x, params: tuple[list[dict], list[dict]], lengths):
        """Apply transforms ``j`` and ``j + 1`` with recorded ``params``: fused when possible."""
        from roomtone.prepare.transforms.fused import room_then_mic

        first, second = self.transforms[j], self.transforms[j + 1]
        y = room_then_mic(first, second, x, params[0], params[1], lengths)
        if y is None:
            y = second._run(first._run(x, params[0], lengths), params[1], lengths)
        return y

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}], p={self.p})"

    def draw(self, x, *, generator, sources=None):
        """Per-example parameters of the chain, without applying it: whether the chain runs, then each transform's
        draws in order on the examples it runs on (draws read only the batch's shape and sources)."""
        from roomtone.prepare.transforms.base import check_sources, pick, uniform

        b = x.shape[0]
        sources = None if sources is None else check_sources(sources, b)
        applied = [u < self.p for u in uniform(generator, b, 0.0, 1.0)]
        idx = [i for i, a in enumerate(applied) if a]
        steps: list[list[dict]] = []
        if idx:
            sub = x[torch.tensor(idx, device=x.device)] if len(idx) < b else x
            steps = [t.draw(sub, generator=generator, sources=pick(sources, idx)) for t in self.transforms]
        params, k = [], 0
        for a in applied:
            if a:
                params.append({"applied": True, "transforms": [dict(s[k], name=t.name)
                                                               for t, s in zip(self.transforms, steps, strict=True)]})
                k += 1
            else:
                params.append({"applied": False})
        return params

    def apply(self, x, params, lengths):
        for j, pair in self._steps():
            step = [p["transforms"][j] for p in params]
            if pair:
                x = self._pair(j, x, (step, [p["transforms"][j + 1] for p in params]), lengths)
            else:
                x = self.transforms[j].replay(x, step, lengths=lengths)
        return x
