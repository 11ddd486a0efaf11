"""Model registry, VGG and pooling heads: shapes, uniform methods, head semantics."""

from __future__ import annotations

import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.models import HEADS, create_model, list_models, register_model
from roomtone.models.heads import AutoPoolHead, create_head


def test_registry_lists_and_creates():
    names = list_models()
    assert {"vgg", "vgg_tiny", "vgg_wide"} <= set(names)
    assert list_models("vgg_t*") == ["vgg_tiny"]
    m = create_model("vgg_tiny", num_classes=4, n_mels=32)
    assert m.model_config["name"] == "vgg_tiny" and m.model_config["num_classes"] == 4
    assert m.model_config["n_mels"] == 32


def test_registry_errors_name_the_value():
    with pytest.raises(ParameterError, match="nope.*registered"):
        create_model("nope", num_classes=3)
    with pytest.raises(ParameterError, match="num_classes=0"):
        create_model("vgg", num_classes=0)
    with pytest.raises(ParameterError, match="head='median'"):
        create_model("vgg", num_classes=3, head="median")
    with pytest.raises(ParameterError, match="frequency pooling"):
        create_model("vgg", num_classes=3, n_mels=8)


def test_register_custom_model():
    @register_model(name="_test_custom")
    def _factory(*, num_classes, **kw):
        return create_model("vgg_tiny", num_classes=num_classes, **kw)

    assert "_test_custom" in list_models()
    assert create_model("_test_custom", num_classes=2).model_config["name"] == "_test_custom"


@pytest.mark.parametrize("head", HEADS)
def test_waveform_in_logits_out_every_head(head):
    torch.manual_seed(0)
    m = create_model("vgg_tiny", num_classes=5, head=head, sr=8000, n_mels=32, hop_length=80).eval()
    x = torch.randn(3, 6000)
    y = m(x)
    assert y.shape == (3, 5)
    feats = m.forward_features(x)
    assert feats.shape[:2] == (3, 32)  # vgg_tiny: 8-16-32 channels
    torch.testing.assert_close(m.forward_head(feats), y)
    assert m.forward_head(feats, pre_logits=True).shape == (3, m.num_features)
    m.reset_classifier(7)
    assert m(x).shape == (3, 7) and m.model_config["num_classes"] == 7


def test_short_input_is_padded_for_pooling():
    m = create_model("vgg", num_classes=3).eval()
    assert m(torch.randn(2, 200)).shape == (2, 3)  # 3 frames < 16 needed by 4 poolings


def test_block_convs_sets_the_convs_per_block_and_their_cost():
    from roomtone.models import receptive_field
    from roomtone.models.compute import compute_profile

    two = create_model("vgg", num_classes=3, channels=(8, 16), n_mels=32)
    one = create_model("vgg", num_classes=3, channels=(8, 16), n_mels=32, block_convs=[1, 2])
    n_convs = [sum(isinstance(x, torch.nn.Conv2d) for x in b.modules()) for b in one.features]
    assert n_convs == [1, 2]
    # the dropped conv is 8 -> 8 channels, 3x3, on the full 32 bands x 101 frames of 1 s at hop 80
    drop = compute_profile(two)["macs_per_second"] - compute_profile(one)["macs_per_second"]
    assert drop == 8 * 8 * 9 * 32 * 101
    assert receptive_field(two).frames - receptive_field(one).frames == 2  # one 3x3 conv fewer at jump 1
    keys = set(create_model("vgg", num_classes=3).state_dict())  # the layout of runs saved before block_convs
    assert {"features.0.0.weight", "features.0.1.running_mean", "features.0.3.weight", "features.3.4.bias"} <= keys
    with pytest.raises(ParameterError, match="block_convs=\\[0, 2\\]"):
        create_model("vgg", num_classes=3, channels=(8, 16), block_convs=[0, 2])


def test_pool_before_norm_is_the_same_function_for_positive_bn_scales():
    kw = dict(num_classes=3, channels=(6, 12), n_mels=32, block_convs=[1, 2])
    torch.manual_seed(0)
    after = create_model("vgg", **kw)
    before = create_model("vgg", pool_before_norm=True, **kw)
    assert [type(m).__name__ for m in before.features[0]] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in before.features[1]][-3:] == ["MaxPool2d", "BatchNorm2d", "ReLU"]
    g = torch.Generator().manual_seed(1)
    for m in after.modules():  # random running statistics and positive scales: BN is increasing per channel
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.1)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    for a, b in zip(after.state_dict().values(), before.state_dict().values(), strict=True):  # same order
        b.copy_(a)
    x = torch.randn(4, 8000, generator=g)
    after.eval(), before.eval()
    torch.testing.assert_close(before(x), after(x), rtol=1e-5, atol=1e-5)
    before.features[0][2].weight.data[0] = -1.0  # a negative scale: max no longer commutes with the BN
    assert not torch.allclose(before(x), after(x), atol=1e-4)
    with pytest.raises(ParameterError, match="pool_before_norm needs max pooling"):
        create_model("vgg", pool_before_norm=True, pool_type="avg", **kw)
    with pytest.raises(ParameterError, match="TCNet builds its own stages"):
        create_model("tcnet_s", num_classes=3, pool_before_norm=True)


def test_freq_pool_flatten_keeps_bins():
    m = create_model("vgg_tiny", num_classes=3, n_mels=32, freq_pool="flatten").eval()
    assert m.num_features == 32 * (32 // 8)
    assert m(torch.randn(2, 4000)).shape == (2, 3)


def test_autopool_spans_mean_to_max():
    torch.manual_seed(0)
    head = AutoPoolHead(6, 3)
    x = torch.randn(2, 6, 10)
    z = head.cla(x)
    with torch.no_grad():
        head.alpha.fill_(0.0)
        torch.testing.assert_close(head(x), z.mean(-1))
        head.alpha.fill_(1e4)
        torch.testing.assert_close(head(x), z.amax(-1), atol=1e-4, rtol=0)
        head.alpha.fill_(-1e4)
        torch.testing.assert_close(head(x), z.amin(-1), atol=1e-4, rtol=0)


def test_pool_heads_match_definitions():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9)
    for name, ref in (("mean", x.mean(-1)), ("max", x.amax(-1)), ("mean+max", x.mean(-1) + x.amax(-1))):
        h = create_head(name, in_features=6, num_classes=3)
        torch.testing.assert_close(h(x, pre_logits=True), ref)
        torch.testing.assert_close(h(x), h.fc(ref))
    att = create_head("attention", in_features=6, num_classes=3)
    w = torch.softmax(att.att(x), -1)
    torch.testing.assert_close(att(x), (w * att.cla(x)).sum(-1))


def test_spec_transform_hook_sees_normalised_spectrogram():
    m = create_model("vgg_tiny", num_classes=2, n_mels=32).train()
    seen = {}

    def hook(s):
        seen["shape"] = s.shape
        return s

    m(torch.randn(4, 4000), spec_transform=hook)
    assert seen["shape"][:3] == (4, 1, 32)


def test_utterance_norm_cancels_a_fixed_channel_gain():
    torch.manual_seed(0)
    m = create_model("vgg_tiny", num_classes=3, n_mels=32, norm="utterance").eval()
    x = torch.randn(2, 4000) * 0.1
    # a gain is a constant dB offset in every band: removed by the per-band mean over time
    torch.testing.assert_close(m(x * 3.0), m(x), atol=1e-3, rtol=0)
    with pytest.raises(ParameterError, match="norm='layer'"):
        create_model("vgg_tiny", num_classes=3, norm="layer")
