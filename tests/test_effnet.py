"""EffNet family: shapes and contract, receptive field (analytic = measured by gradient), determinism (ONNX parity:
test_model_contract)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models import HEADS, create_model, list_models, receptive_field
from roomtone.models.effnet import effnet_layers
from roomtone.models.receptive_field import stack_receptive_field

SIZES = ("effnet_s", "effnet_m", "effnet_l")


def test_registered_and_sizes_grow():
    assert set(SIZES) <= set(list_models("effnet*"))
    params = [sum(p.numel() for p in create_model(n, num_classes=10).parameters()) for n in SIZES]
    assert params[0] < params[1] < params[2]


@pytest.mark.parametrize("head", HEADS)
def test_waveform_in_logits_out_and_contract(head):
    torch.manual_seed(0)
    m = create_model("effnet_s", num_classes=5, head=head, n_mels=32).eval()
    x = torch.randn(3, 6000)
    y = m(x)
    assert y.shape == (3, 5) and m.sr == 8000
    feats = m.forward_features(x)
    # 64 frames... 6000 / 80 + 1 = 76 frames -> strided stem and 3 poolings of 2: 76 / 16 -> 4 (floor, ceil at stem)
    assert feats.shape[:3] == (3, 128, 32 // 16)
    torch.testing.assert_close(m.forward_head(feats), y)
    assert m.forward_head(feats, pre_logits=True).shape == (3, m.num_features)
    m.reset_classifier(7)
    assert m(x).shape == (3, 7) and m.model_config["num_classes"] == 7


def test_width_depth_and_short_input():
    m = create_model("effnet_m", num_classes=3, width=0.5, depth=(1, 2, 2, 1)).eval()
    assert m.features[-1][-1].point.out_channels == 64  # 128 * 0.5
    assert sum(isinstance(b, nn.Module) and type(b).__name__ == "SeparableBlock" for b in m.modules()) == 6
    assert m(torch.randn(2, 200)).shape == (2, 3)  # 3 frames < 16 needed: padded like VGG


def test_errors_name_the_value():
    with pytest.raises(ParameterError, match="kernel=\\(2, 3\\)"):
        create_model("effnet_s", num_classes=3, kernel=(2, 3))
    with pytest.raises(ParameterError, match="depth=\\[1, 2\\]"):
        create_model("effnet_s", num_classes=3, depth=[1, 2])
    with pytest.raises(ParameterError, match="width=0"):
        create_model("effnet_s", num_classes=3, width=0)
    with pytest.raises(ParameterError, match="frequency pooling"):
        create_model("effnet_s", num_classes=3, n_mels=8)


def _positive(m: nn.Module) -> nn.Module:
    """Positive conv weights and identity BN: every path is active, so the gradient reaches the whole field."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.uniform_(0.1, 1.0)
    return m.eval()


@pytest.mark.parametrize("name,kw", [("effnet_s", {}), ("effnet_m", {"kernel": (5, 3)}),
                                     ("effnet_s", {"pool": [(2, 1), (2, 2), (1, 3), (2, 2)]}),
                                     ("effnet_s", {"pool": [(2, 4), (2, 2), (2, 2), (1, 2)]})])
def test_receptive_field_analytic_equals_gradient(name, kw):
    torch.manual_seed(0)
    m = _positive(create_model(name, num_classes=4, pool_type="avg", **kw))
    rf = receptive_field(m)
    assert rf.seconds == pytest.approx(((rf.frames - 1) * 80 + 512) / 8000)
    # the analytic layer list of the design helper gives the same field
    (b, f), (jb, jf) = stack_receptive_field(effnet_layers(m.block_spec["depth"], pools=m.pools,
                                                           kernel=m.block_spec["kernel"]))
    assert (b, f, jb, jf) == (rf.bins, rf.frames, rf.jump_bins, rf.jump_frames)
    s = torch.rand(1, 1, 2 * rf.bins + 64, 2 * rf.frames + 64, requires_grad=True)
    out = m.features(s)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    nz = s.grad[0, 0].abs() > 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    assert int(cols[-1] - cols[0] + 1) == rf.frames
    assert int(rows[-1] - rows[0] + 1) == rf.bins


def test_deterministic_init_and_forward():
    def build():
        torch.manual_seed(3)
        return create_model("effnet_m", num_classes=6)

    a, b = build(), build()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    x = torch.randn(4, 8000, generator=torch.Generator().manual_seed(1))
    a.train(), b.train()
    torch.manual_seed(5)
    ya = a(x)
    torch.manual_seed(5)
    yb = b(x)
    assert torch.equal(ya, yb)


@pytest.mark.parametrize("family", ["vgg", "effnet"])
def test_design_options_match_the_models_they_stand_for(family):
    from roomtone.models.compute import compute_profile
    from roomtone.models.receptive_field import design, option_model

    d = design(target_duration=0.5, sr=8000, hop_length=80, n_fft=512, family=family, flops=True, max_blocks=4,
               pool_times=(2, 3))
    assert d["family"] == family and d["recommended"]["covers"]
    for o in d["options"][::3]:
        pool = [[2, o["pool_time"]]] * o["blocks"]
        m = option_model(family, pool, sr=8000, hop_length=80, n_fft=512)
        rf = receptive_field(m)
        assert (rf.frames, round(rf.seconds, 4)) == (o["frames"], o["seconds"])
        assert m.min_frames == o["min_frames"]
        assert o["flops_per_second"] == compute_profile(m)["flops_per_second"]
    with pytest.raises(ParameterError, match="family='resnet'"):
        design(target_duration=0.5, sr=8000, hop_length=80, family="resnet")
