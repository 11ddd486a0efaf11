"""PANNs CNN6/10/14: published key layout, strict loading with clear reports, front end vs librosa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import CheckpointError, ParameterError
from roomtone.models import create_model
from roomtone.models.panns import PANNs, load_panns_checkpoint, load_panns_state_dict

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def published_keys(arch: str) -> list[str]:
    """The key list of the published checkpoints, written out from the published architecture."""
    keys = ["spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
            "logmel_extractor.melW"] + [f"bn0.{b}" for b in BN]
    n_blocks = 6 if arch == "cnn14" else 4
    for i in range(1, n_blocks + 1):
        if arch == "cnn6":
            keys += [f"conv_block{i}.conv1.weight"] + [f"conv_block{i}.bn1.{b}" for b in BN]
        else:
            keys += [f"conv_block{i}.conv1.weight", f"conv_block{i}.conv2.weight"]
            keys += [f"conv_block{i}.bn1.{b}" for b in BN] + [f"conv_block{i}.bn2.{b}" for b in BN]
    return keys + ["fc1.weight", "fc1.bias", "fc_audioset.weight", "fc_audioset.bias"]


SHAPES = {"cnn6": (5, 512, 512), "cnn10": (3, 512, 512), "cnn14": (3, 2048, 2048)}


def fake_published(arch: str, seed: int, shapes_from: PANNs | None = None) -> dict:
    """A random state dict in the published layout (random BN stats so that eval mode is non-trivial)."""
    g = torch.Generator().manual_seed(seed)
    own = (shapes_from or PANNs(arch=arch)).state_dict()
    out = {}
    for k in published_keys(arch):
        if k.startswith("spectrogram_extractor"):
            out[k] = torch.randn(513, 1, 1024, generator=g)
        elif k == "logmel_extractor.melW":
            out[k] = torch.rand(513, 64, generator=g)
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1000)
        elif k.endswith("running_var"):
            out[k] = torch.rand(own[k].shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(own[k].shape, generator=g) * 0.05
    return out


@pytest.mark.parametrize("arch", ["cnn6", "cnn10", "cnn14"])
def test_published_layout_loads_identically(tmp_path, arch):
    other = PANNs(arch=arch)
    sd = fake_published(arch, seed=1, shapes_from=other)
    path = tmp_path / f"{arch}.pth"
    torch.save({"model": sd, "iteration": 10}, path)
    model, report = load_panns_checkpoint(path, arch=arch)
    assert sorted(report["ignored"]) == sorted(k for k in sd if k.startswith(("spectrogram_", "logmel_")))
    # the same weights through a plain state_dict load
    other.load_state_dict({k: v for k, v in sd.items() if not k.startswith(("spectrogram_", "logmel_"))}, strict=False)
    other.eval()
    x = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        a, b = model(x), other(x)
    assert a.shape == (2, 527)
    assert torch.equal(a, b)
    assert model.embedding_size == SHAPES[arch][1]


def test_every_model_key_is_a_published_key():
    for arch in ("cnn6", "cnn10", "cnn14"):
        own = [k for k in PANNs(arch=arch).state_dict() if not k.startswith("frontend.")]
        assert sorted(own) == sorted(k for k in published_keys(arch) if not k.startswith(("spectrogram_", "logmel_")))


def test_unknown_and_missing_keys_are_listed():
    model = PANNs(arch="cnn6")
    sd = fake_published("cnn6", seed=2)
    sd.pop("conv_block2.bn1.running_var")
    sd["conv_block9.conv1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_panns_state_dict(model, sd)
    msg = str(err.value)
    assert "missing keys (1): conv_block2.bn1.running_var" in msg
    assert "unknown keys (1): conv_block9.conv1.weight" in msg


def test_shape_mismatch_and_wrong_frontend_are_reported():
    model = PANNs(arch="cnn10")
    sd = fake_published("cnn10", seed=3)
    sd["logmel_extractor.melW"] = torch.zeros(513, 128)  # a 128-band checkpoint
    with pytest.raises(CheckpointError, match=r"logmel_extractor.melW: \(513, 128\)"):
        load_panns_state_dict(model, sd)
    wrong_arch = fake_published("cnn6", seed=3)
    with pytest.raises(CheckpointError, match="conv_block1.conv1.weight: checkpoint"):
        load_panns_state_dict(model, wrong_arch)


def test_transfer_load_skips_classifier(tmp_path):
    sd = fake_published("cnn6", seed=4)
    torch.save({"model": sd}, tmp_path / "c.pth")
    model, report = load_panns_checkpoint(tmp_path / "c.pth", arch="cnn6", num_classes=7)
    assert model.fc_audioset.out_features == 7
    assert report["skipped"] == ["fc_audioset.weight", "fc_audioset.bias"]
    assert torch.equal(model.fc1.weight, sd["fc1.weight"])


def test_unsafe_or_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_panns_checkpoint(tmp_path / "nope.pth", arch="cnn6")
    import pickle

    (tmp_path / "bad.pth").write_bytes(pickle.dumps({"model": object()}))
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_panns_checkpoint(tmp_path / "bad.pth", arch="cnn6")


def test_registry_and_errors():
    m = create_model("panns-cnn10", num_classes=4)
    assert m.sr == 32000 and m.frontend.n_mels == 64
    m.eval()
    x = torch.randn(3, 8000)  # shorter than the pooling needs: padded
    with torch.no_grad():
        assert m(x).shape == (3, 4)
        assert m.forward_frames(x).shape[::2] == (3, 512)
    m.reset_classifier(2)
    assert m.forward_head(torch.zeros(1, 512, 3)).shape == (1, 2)
    assert m.forward_head(torch.zeros(1, 512, 3), pre_logits=True).shape == (1, 512)
    with pytest.raises(ParameterError, match="arch='cnn99'"):
        PANNs(arch="cnn99")
    with pytest.raises(ParameterError, match="in_chans=2"):
        create_model("panns-cnn6", num_classes=3, in_chans=2)


def test_frontend_matches_published_recipe():
    """Log-mel as in the published code: centred reflect-padded STFT power, Slaney mel 50-14000 Hz, 10*log10(max(x, 1e-10))."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    y = (rng.standard_normal(32000) * 0.1).astype(np.float32)
    S = np.abs(librosa.stft(y, n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True,
                            pad_mode="reflect")) ** 2
    mel = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000) @ S
    ref = 10 * np.log10(np.maximum(mel, 1e-10))
    m = PANNs(arch="cnn6")
    got = m.frontend(torch.tensor(y)[None])[0].numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-3)
