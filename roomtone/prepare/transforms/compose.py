"""Compose: apply transforms in sequence (the whole chain with probability ``p``)."""

from __future__ import annotations

import torch

from roomtone.prepare.transforms.base import Transform


class Compose(Transform):
    """Apply ``transforms`` one after the other, each with its own ``p``; the chain itself with ``p``.

    Params per example: ``{"applied": ..., "transforms": [{"name": ..., **params}, ...]}``.
    ``Compose([])`` is the identity (the ``clean`` condition).
    """

    def __init__(self, transforms, *, p: float = 1.0, seed: int = 0):
        transforms = list(transforms)
        srs = {t.sr for t in transforms if t.sr is not None}
        super().__init__(p=p, sr=srs.pop() if len(srs) == 1 else None, seed=seed)
        self.transforms = transforms

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}], p={self.p})"

    def __call__(self, audio, *, generator=None, lengths=None):
        from roomtone.prepare.transforms.base import as_batch, uniform

        x, squeeze = as_batch(audio)
        g = generator if generator is not None else self._own_generator()
        applied = [u < self.p for u in uniform(g, x.shape[0], 0.0, 1.0)]
        steps: list[list[dict]] = []
        out = x
        idx = [i for i, a in enumerate(applied) if a]
        if idx:
            sel = torch.tensor(idx, device=x.device)
            sub = x[sel] if len(idx) < x.shape[0] else x
            sub_len = lengths
            if lengths is not None and len(idx) < x.shape[0]:
                sub_len = torch.as_tensor(lengths)[sel.cpu()]
            for t in self.transforms:
                sub = t(sub, generator=g, lengths=sub_len)
                steps.append(t.last_params)
            if len(idx) < x.shape[0]:
                out = x.clone()
                out[sel] = sub
            else:
                out = sub
        params = []
        k = 0
        for a in applied:
            if a:
                params.append({"applied": True, "transforms": [dict(s[k], name=t.name)
                                                               for t, s in zip(self.transforms, steps, strict=True)]})
                k += 1
            else:
                params.append({"applied": False})
        self.last_params = params
        return out[0] if squeeze else out

    def apply(self, x, params, lengths):
        for j, t in enumerate(self.transforms):
            x = t.replay(x, [p["transforms"][j] for p in params], lengths=lengths)
        return x
