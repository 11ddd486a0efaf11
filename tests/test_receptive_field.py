"""Receptive field: analytic values, conversion through the front end, design proposals."""

from __future__ import annotations

import librosa
import pytest
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models import check_receptive_field, create_model, design, receptive_field
from roomtone.models.receptive_field import frames_to_seconds, stack_receptive_field


class _Front:
    sr, hop_length, win_length, n_fft, n_mels, fmin, fmax = 16000, 160, 400, 512, 40, 0.0, 8000.0


def _three_convs():
    layers = []
    for c_in, c_out in ((1, 4), (4, 8), (8, 8)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


def test_three_convs_with_2x2_pooling_analytic():
    # conv 3 -> pool 4 (jump 2) -> conv 4+2*2=8 -> pool 10 (jump 4) -> conv 10+2*4=18 -> pool 22 (jump 8)
    rf = receptive_field(_three_convs(), _Front())
    assert (rf.frames, rf.bins, rf.jump_frames, rf.jump_bins) == (22, 22, 8, 8)
    # seconds: (22 - 1) * hop + win samples
    assert rf.seconds == pytest.approx((21 * 160 + 400) / 16000)
    assert rf.jump_seconds == pytest.approx(8 * 160 / 16000)


def test_stack_with_stride_dilation_and_rectangular_pooling():
    layers = [((3, 5), (1, 1), (1, 2)), ((1, 4), (1, 4), (1, 1)), ((3, 3), (1, 1), (1, 1))]
    (b, f), (jb, jf) = stack_receptive_field(layers)
    assert (b, f) == (1 + 2 + 2, 1 + 8 + 3 + 2 * 4)
    assert (jb, jf) == (1, 4)


def test_hz_span_from_mel_band_edges():
    rf = receptive_field(_three_convs(), _Front())
    edges = librosa.mel_frequencies(n_mels=42, fmin=0.0, fmax=8000.0)
    assert rf.hz_low == pytest.approx((edges[0], edges[23]), rel=1e-6)
    assert rf.hz_high == pytest.approx((edges[40 - 22], edges[41]), rel=1e-6)
    assert rf.hz_high[1] - rf.hz_high[0] > rf.hz_low[1] - rf.hz_low[0]  # mel bands widen upwards


def test_vgg_default_uses_its_frontend():
    m = create_model("vgg", num_classes=10, sr=8000, hop_length=80, n_fft=512)
    rf = receptive_field(m)
    # 4 blocks of (conv, conv, pool 2): r = 1 + 2+2+1 + (4+4+2) + (8+8+4) + (16+16+8) = 76
    assert rf.frames == 76 and rf.jump_frames == 16
    assert rf.seconds == pytest.approx(frames_to_seconds(76, sr=8000, hop_length=80, win_length=512))


def test_design_covers_target_and_warns():
    d = design(target_duration=0.5, sr=8000, hop_length=80, n_fft=512)
    r = d["recommended"]
    assert r["covers"] and r["seconds"] >= 0.5
    shallower = [o for o in d["options"] if o["pool_time"] == r["pool_time"] and o["blocks"] == r["blocks"] - 1]
    assert not shallower or not shallower[0]["covers"]  # the shallowest that covers
    m = create_model("vgg", num_classes=2, pool=[(2, 2)] * 4)
    rf = receptive_field(m)
    assert check_receptive_field(rf, target_duration=rf.seconds) is None
    assert "smaller" in check_receptive_field(rf, target_duration=10 * rf.seconds)
    assert "larger" in check_receptive_field(rf, target_duration=rf.seconds / 10)
    with pytest.raises(ParameterError, match="target_duration=-1"):
        design(target_duration=-1, sr=8000, hop_length=80)
