"""TCNet family: the all-band stem equals a plain tall conv, shapes and contract, receptive field (analytic =
measured by gradient), FLOPs against vgg, errors (ONNX parity: test_model_contract)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models import HEADS, create_model, list_models, receptive_field
from roomtone.models.compute import compute_profile
from roomtone.models.tcnet import AllBandConv, TemporalBlock


def test_all_band_conv_is_the_tall_conv_it_stands_for():
    torch.manual_seed(0)
    conv = AllBandConv(40, 24, kernel=3, stride=2)
    x = torch.randn(3, 1, 40, 57, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_(True)
    y = conv(x)
    ref = nn.functional.conv2d(ref_x, conv.weight, stride=conv.stride, padding=conv.padding)
    assert y.shape == ref.shape == (3, 24, 1, 29)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_feature_map_is_one_bin_high_and_strided_in_time(head):
    """(The contract itself is tested on every registered model in test_model_contract.)"""
    m = create_model("tcnet_s", num_classes=5, head=head, n_mels=32).eval()
    # 6000 / 80 + 1 = 76 frames -> stem (stride 1) -> three stride-2 stages: 38, 19, 10 frames, one bin
    feats = m.forward_features(torch.randn(3, 6000))
    assert feats.shape == (3, 96, 1, 10) and m.min_frames == 8
    assert m.forward_head(feats).shape == (3, 5)


def test_sizes_depth_width_and_short_input():
    assert {"tcnet_s", "tcnet_m"} <= set(list_models("tcnet*"))
    small, medium = (compute_profile(create_model(n, num_classes=10)) for n in ("tcnet_s", "tcnet_m"))
    assert small["params"] < medium["params"]
    m = create_model("tcnet_m", num_classes=3, width=0.5, depth=(0, 1, 2, 3)).eval()
    assert m.features[-1][-1].conv2.out_channels == 48  # 96 * 0.5
    assert sum(isinstance(b, TemporalBlock) for b in m.modules()) == 6
    residual = [b.residual for b in m.modules() if isinstance(b, TemporalBlock)]
    assert residual == [False, False, True, False, True, True]  # the first block of a stage strides
    assert m(torch.randn(2, 200)).shape == (2, 3)  # 3 frames < 8 needed: padded like VGG


def test_a_tenth_of_vgg_flops():
    vgg = compute_profile(create_model("vgg", num_classes=10))["flops_per_second"]
    tc = compute_profile(create_model("tcnet_s", num_classes=10))
    assert tc["flops_per_second"] <= vgg / 10
    # exact count of the stem: 64 bands x 3 frames x 48 channels per frame (101 frames in 1 s at hop 80)
    assert tc["by_layer"]["features.0.0"] == 64 * 3 * 48 * 101


def test_errors_name_the_value():
    with pytest.raises(ParameterError, match="kernel=4"):
        create_model("tcnet_s", num_classes=3, kernel=4)
    with pytest.raises(ParameterError, match="depth=\\[1, 2\\]"):
        create_model("tcnet_s", num_classes=3, depth=[1, 2])
    with pytest.raises(ParameterError, match="width=0"):
        create_model("tcnet_s", num_classes=3, width=0)
    with pytest.raises(ParameterError, match="strides time only"):
        create_model("tcnet_s", num_classes=3, pool=(2, 2))
    with pytest.raises(ParameterError, match="TCNet builds its own stages"):
        create_model("tcnet_s", num_classes=3, block_convs=1)


@pytest.mark.parametrize("kw", [{}, {"kernel": 5, "depth": 2}, {"pool": [(1, 1), (1, 3), (1, 1), (1, 2)]}])
def test_receptive_field_analytic_equals_gradient(kw):
    torch.manual_seed(0)
    m = create_model("tcnet_s", num_classes=4, n_mels=16, **kw)
    with torch.no_grad():  # positive weights: every path is active, the gradient reaches the whole field
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.uniform_(0.1, 1.0)
    m.eval()
    rf = receptive_field(m)
    assert rf.bins == 16  # the stem sees every band
    assert rf.seconds == pytest.approx(((rf.frames - 1) * 80 + 512) / 8000)
    s = torch.rand(1, 1, 16, 2 * rf.frames + 64, requires_grad=True)
    out = m.features(s)
    out[0, :, 0, out.shape[3] // 2].sum().backward()
    cols = (s.grad[0, 0].abs() > 0).any(0).nonzero().flatten()
    assert int(cols[-1] - cols[0] + 1) == rf.frames
