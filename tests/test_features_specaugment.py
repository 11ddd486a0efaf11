"""SpecAugment: training mode only, explicit generator, reproducible, respects lengths."""

from __future__ import annotations

import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.features import SpecAugment


def test_identity_in_eval_mode():
    aug = SpecAugment(2, 10, 2, 10).eval()
    x = torch.randn(3, 40, 100)
    assert aug(x, generator=torch.Generator().manual_seed(0)) is x


def test_masks_are_reproducible_and_per_example():
    aug = SpecAugment(2, 8, 2, 20).train()
    x = torch.randn(4, 40, 100) + 10
    a = aug(x, generator=torch.Generator().manual_seed(1))
    params = aug.last_params
    b = aug(x, generator=torch.Generator().manual_seed(1))
    c = aug(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(params) == 4 and set(params[0]) == {"freq_starts", "freq_widths", "time_starts", "time_widths"}
    # the masked cells are exactly the drawn bands
    for i, p in enumerate(params):
        expect = torch.zeros(40, 100, dtype=torch.bool)
        for s, w in zip(p["freq_starts"], p["freq_widths"], strict=True):
            expect[s : s + w, :] = True
        for s, w in zip(p["time_starts"], p["time_widths"], strict=True):
            expect[:, s : s + w] = True
        assert torch.equal(a[i] == 0, expect)
        assert all(w <= 8 for w in p["freq_widths"]) and all(w <= 20 for w in p["time_widths"])
    assert len({tuple(p["time_starts"]) for p in params}) > 1  # drawn per example


def test_time_masks_stay_inside_lengths_and_padding_untouched():
    aug = SpecAugment(0, 0, 3, 30, mask_value="mean").train()
    x = torch.randn(8, 20, 120) + 5
    lengths = torch.tensor([120, 60, 31, 90, 5, 120, 40, 70])
    g = torch.Generator().manual_seed(0)
    out, n = aug(x, lengths, generator=g)
    assert torch.equal(n, lengths)
    for i, p in enumerate(aug.last_params):
        for s, w in zip(p["time_starts"], p["time_widths"], strict=True):
            assert s + w <= int(lengths[i])
        assert torch.equal(out[i, :, int(lengths[i]):], x[i, :, int(lengths[i]):])
        # mask value is the mean of the valid region only
        masked = (out[i] != x[i])
        if masked.any():
            expect = x[i, :, : int(lengths[i])].mean()
            torch.testing.assert_close(out[i][masked], expect.expand(int(masked.sum())))


def test_own_seeded_generator_and_errors():
    x = torch.randn(2, 30, 50)
    a = SpecAugment(1, 5, 1, 5, seed=3).train()(x)
    b = SpecAugment(1, 5, 1, 5, seed=3).train()(x)
    assert torch.equal(a, b)
    with pytest.raises(ParameterError, match="freq_masks=-1"):
        SpecAugment(freq_masks=-1)
    with pytest.raises(ParameterError, match="mask_value"):
        SpecAugment(mask_value="median")
