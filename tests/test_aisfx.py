"""aiSFX: roomtone's rebuild vs the package's own network (installed with --no-deps), real audio."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from roomtone.models import create_model
from roomtone.models.aisfx import Aisfx


def _aisfx_package() -> Path:
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("aisfx is not importable: CI installs it with `pip install --no-deps aisfx==0.1.2`")
    return Path(list(spec.submodule_search_locations)[0])


def _package_network():
    """The package's EmbeddingNet, loaded from its own file (its __init__ needs tqdm, which we do not install)."""
    root = _aisfx_package()
    spec = importlib.util.spec_from_file_location("_aisfx_cnn2d", root / "models" / "cnn2d.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.EmbeddingNet("max", 3, 1, 64), root / "models" / "checkpoint.pth"


def _fsdd_44k(fsdd_dir, names):
    from roomtone.audio import load

    return [load(fsdd_dir / n, sr=44100)[0] for n in names]


@pytest.mark.data
def test_embeddings_match_package_network(fsdd_dir):
    from roomtone.models.pretrained import aisfx_state_from_checkpoint

    ref, ckpt = _package_network()
    state = aisfx_state_from_checkpoint(ckpt)  # weights_only=True + allow-list
    ref.load_state_dict(state)
    ref.eval()
    model = Aisfx(num_classes=3)
    model.backbone.load_state_dict(state)
    model.eval()
    clips = _fsdd_44k(fsdd_dir, ["0_jackson_0.wav", "7_nicolas_3.wav", "4_theo_12.wav"])
    for y in clips:
        with torch.no_grad():
            feats = model.frontend(y[None])  # (1, frames, 96): the same input features for both networks
            ours = model.forward_head(model.forward_features(y[None]), pre_logits=True)
            theirs = ref(feats)
        assert ours.shape == theirs.shape == (1, 512)
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
        assert theirs.abs().max() > 0.1  # a real, non-degenerate embedding


@pytest.mark.data
def test_frontend_matches_package_librosa_recipe(fsdd_dir):
    librosa = pytest.importorskip("librosa")
    y = _fsdd_44k(fsdd_dir, ["2_george_5.wav"])[0].numpy()
    yn = y / np.abs(y).max()
    S = librosa.feature.melspectrogram(y=yn, sr=44100, n_mels=96, norm=1.0, fmin=0.0, fmax=22050.0, htk=True,
                                       power=2.0, hop_length=1024, win_length=2048, n_fft=2048)
    ref = np.log10(S * 1e4 + 1) / 9.457798957824707
    got = Aisfx().frontend(torch.tensor(y)[None])[0].numpy()
    np.testing.assert_allclose(got, ref.T, atol=1e-4)


def test_shapes_and_registry():
    m = create_model("aisfx", num_classes=4).eval()
    assert m.sr == 44100 and m.embedding_size == 512
    x = torch.randn(2, 44100)
    with torch.no_grad():
        assert m(x).shape == (2, 4)
        frames = m.forward_frames(x)
    assert frames.shape == (2, 43 // 8, 512)
    with torch.no_grad():  # very short input is padded to the minimum the pooling needs
        assert m(torch.randn(1, 100)).shape == (1, 4)
    # peak normalization: the embedding does not depend on the input level
    with torch.no_grad():
        torch.testing.assert_close(m.forward_features(x), m.forward_features(0.01 * x), atol=1e-4, rtol=1e-4)
        assert m.forward_features(x).shape == (2, 512, 43 // 8)  # the unpooled map, time last
