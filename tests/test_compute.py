"""Compute: MACs by hand and by torch's FLOP counter, FLOPs per second of audio, step timing, run.json report."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from roomtone.errors import ParameterError
from roomtone.models import create_model
from roomtone.models.compute import adamw, compute_profile, count_macs, count_parameters, step_seconds


def test_macs_match_a_hand_count():
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                      nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2), nn.Flatten(), nn.Linear(160, 3))
    by = count_macs(m, torch.zeros(1, 1, 8, 10))
    # conv1: 4*8*10 outputs x 1*9; conv2: 8*4*5 outputs x (4/2)*9; linear: 3 outputs x 160
    assert by == {"0": 320 * 9, "2": 160 * 18, "4": 3 * 160}
    assert count_parameters(m) == (4 * 9 + 4) + (8 * 2 * 9 + 8) + (160 * 3 + 3)
    assert sum(count_macs(m, torch.zeros(2, 1, 8, 10)).values()) == 2 * sum(by.values())  # linear in batch


@pytest.mark.parametrize("name", ["vgg_tiny", "effnet_s"])
def test_network_flops_equal_torch_flop_counter(name):
    from torch.utils.flop_counter import FlopCounterMode

    m = create_model(name, num_classes=10, n_mels=32).eval()
    x = torch.randn(1, 8000)
    with torch.no_grad():
        s = m.spectrogram(x)
        with FlopCounterMode(display=False) as fc:
            m.forward_head(m.forward_spectrogram(s))
    prof = compute_profile(m, seconds=1.0)
    assert prof["flops_per_second"] == fc.get_total_flops()  # convs + classifier, front end excluded
    assert prof["params"] == count_parameters(m)
    assert compute_profile(m, seconds=2.0)["flops_per_second"] == pytest.approx(prof["flops_per_second"], rel=0.03)


def test_effnet_is_a_tenth_of_vgg():
    vgg = compute_profile(create_model("vgg", num_classes=10))["flops_per_second"]
    for name in ("effnet_s", "effnet_m"):
        assert compute_profile(create_model(name, num_classes=10))["flops_per_second"] < vgg / 10


def test_step_seconds_times_the_precision_asked():
    m = create_model("vgg_tiny", num_classes=3, n_mels=32)
    seen = []
    m.features[0][0].register_forward_hook(lambda mod, i, out: seen.append(out.dtype))
    spectra = []
    m.frontend.register_forward_hook(lambda mod, i, out: spectra.append(out.dtype))
    step_seconds(m, batch_size=2, seconds=0.5, steps=1, warmup=0)
    step_seconds(m, batch_size=2, seconds=0.5, steps=1, warmup=0, autocast=torch.bfloat16)
    assert seen == [torch.float32, torch.bfloat16]
    assert spectra == [torch.float32, torch.float32]   # the front end stays float32 under autocast


def test_step_seconds_restores_the_model():
    torch.manual_seed(0)
    m = create_model("effnet_s", num_classes=3, n_mels=32)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    t = step_seconds(m, batch_size=4, seconds=0.5, steps=2, warmup=1)
    assert t > 0
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    calls = []
    step_seconds(m, batch_size=4, seconds=0.5, steps=3, warmup=2, between=lambda: calls.append(1))
    assert len(calls) == 5                                  # before every step, warm-up included
    with pytest.raises(ParameterError, match="batch_size=0"):
        step_seconds(m, batch_size=0)
    with pytest.raises(ParameterError, match="seconds=-1"):
        compute_profile(m, seconds=-1)


def test_fit_reports_compute_in_run_json(tmp_path):
    from test_train import make_tones, tiny_config

    from roomtone.train import fit

    data = make_tones(tmp_path / "data")
    s = fit(tiny_config(epochs=1), data_dir=data, out_dir=tmp_path / "run", progress=False)
    c = json.loads((tmp_path / "run" / "run.json").read_text())["compute"]
    assert c == s["compute"]
    model = create_model("vgg_tiny", num_classes=3, sr=8000, n_fft=256, hop_length=64, n_mels=32)
    assert c["flops_per_audio_second"] == compute_profile(model)["flops_per_second"]
    assert c["params"] == count_parameters(model) and c["steps"] == s["global_step"]
    assert 0 < c["model_seconds"] < s["train_seconds"] and 0 < c["outside_model_share"] < 1
    assert c["achieved_gflops"] > 0


def test_training_layout_is_channels_last_with_the_same_numbers():
    from roomtone.models.compute import to_training_layout

    torch.manual_seed(0)
    plain = create_model("vgg_tiny", num_classes=4, n_mels=32).eval()
    fast = create_model("vgg_tiny", num_classes=4, n_mels=32).eval()
    fast.load_state_dict(plain.state_dict())
    assert to_training_layout(fast) is fast
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert not convs[1].weight.is_contiguous()  # a 3x3 conv with > 1 input channel really changed layout
    x = torch.randn(2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)  # float summation order only
    back = create_model("vgg_tiny", num_classes=4, n_mels=32)
    back.load_state_dict(fast.state_dict())  # a checkpoint of the training layout loads into a fresh model
    for k, v in back.state_dict().items():
        assert torch.equal(v, plain.state_dict()[k]), k


def test_the_training_plan_trains_in_the_training_layout(tmp_path):
    from roomtone.config import TrainConfig
    from roomtone.models.compute import TRAINING_MEMORY_FORMAT
    from roomtone.prepare.datasets.synthetic import synthetic_events
    from roomtone.prepare.pipeline import prepare
    from roomtone.train.data import load_splits
    from roomtone.train.distributed import DistInfo
    from roomtone.train.strategy import make_plan

    data = prepare(synthetic_events(tmp_path / "wav", seed=0, n_per_class=4, n_sessions=4), tmp_path / "p",
                   valid=0.25, test=0.25, seed=0, html=False)
    splits, meta = load_splits(data)
    labels = sorted({r.label for r in splits["train"]})
    plan = make_plan(TrainConfig(model="vgg_tiny"), splits, meta, labels=labels, out_dir=tmp_path / "run",
                     device=torch.device("cpu"), info=DistInfo())
    w = next(m.weight for m in plan.model.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1)
    assert w.is_contiguous(memory_format=TRAINING_MEMORY_FORMAT)


def test_adamw_is_fused_on_cpu_and_takes_the_per_tensor_loops_steps():
    """The loop's optimizer runs fused on CPU parameters (groups too) and its updates equal torch's per-tensor
    AdamW up to float rounding, weight decay per group included."""
    torch.manual_seed(0)
    a = create_model("vgg", num_classes=3, channels=(4, 8), dropout=0.0)
    b = create_model("vgg", num_classes=3, channels=(4, 8), dropout=0.0)
    b.load_state_dict(a.state_dict())

    def groups(m):
        return [{"params": [p for p in m.parameters() if p.ndim > 1], "weight_decay": 0.05},
                {"params": [p for p in m.parameters() if p.ndim <= 1], "weight_decay": 0.0}]

    fused, loop = adamw(groups(a), lr=1e-2), torch.optim.AdamW(groups(b), lr=1e-2, foreach=False)
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    x = torch.randn(4, 8000)
    for _ in range(5):
        for m, opt in ((a, fused), (b, loop)):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    assert adamw([torch.zeros(2, dtype=torch.int64, requires_grad=False)], lr=1e-3).defaults["fused"] is None
