"""HEAR API contract: shapes (n_sounds x n_timestamps x D), timestamps in ms, load_model from the cache, embed CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone import hear
from roomtone.errors import ParameterError
from roomtone.models import create_model


@pytest.fixture(scope="module")
def aisfx_hear():
    torch.manual_seed(0)
    return hear.HearModel(create_model("aisfx", num_classes=1))


def test_attributes_and_shapes(aisfx_hear):
    m = aisfx_hear
    assert m.sample_rate == 44100 and m.scene_embedding_size == 512 and m.timestamp_embedding_size == 512
    audio = torch.randn(3, 2 * 44100) * 0.1
    emb, ts = hear.get_timestamp_embeddings(audio, m)
    assert m.hop_seconds <= 0.05  # HEAR's suggested maximum by default
    assert emb.shape == (3, 40, 512) and ts.shape == (3, 40)  # a window centred every 50 ms over 2 s
    np.testing.assert_allclose(ts[0].numpy(), 50.0 * np.arange(40), atol=0.02)
    assert torch.equal(ts[0], ts[2])
    scene = hear.get_scene_embeddings(audio, m)
    assert scene.shape == (3, 512)
    # both are the contract's pooled embedding: the scene of a sound, the timestamp of its windows
    net = m.model
    with torch.no_grad():
        torch.testing.assert_close(scene, net.forward_head(net.forward_features(audio), pre_logits=True))
        k = 20  # window centred at 1.0 s: samples 0.5 s .. 1.5 s
        win = audio[:, k * 2205 - 22050:k * 2205 + 22050]
        torch.testing.assert_close(emb[:, k], net.forward_head(net.forward_features(win), pre_logits=True),
                                   atol=1e-5, rtol=1e-5)


def test_batching_does_not_change_results(aisfx_hear):
    audio = torch.randn(5, 30000) * 0.1
    a = hear.get_scene_embeddings(audio, aisfx_hear, batch_size=2)
    b = hear.get_scene_embeddings(audio, aisfx_hear, batch_size=5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_panns_and_sliding_window_models():
    torch.manual_seed(0)
    p = hear.HearModel(create_model("panns-cnn6", num_classes=527))
    emb, ts = hear.get_timestamp_embeddings(torch.randn(2, 32000), p)
    assert emb.shape == (2, 20, 512) and ts.shape == emb.shape[:2]
    p10 = hear.HearModel(p.model, hop_seconds=0.01, window_seconds=0.5)  # configurable
    emb, ts = hear.get_timestamp_embeddings(torch.randn(2, 32000), p10)
    assert emb.shape == (2, 100, 512) and abs(float(ts[0, 1] - ts[0, 0]) - 10.0) < 1e-3
    v = hear.HearModel(create_model("vgg", num_classes=3), window_seconds=0.5, hop_seconds=0.25)
    emb, ts = hear.get_timestamp_embeddings(torch.randn(2, v.sample_rate * 2), v)
    assert emb.shape == (2, 8, v.timestamp_embedding_size)  # windows centred at 0, .25, ..., 1.75 s
    np.testing.assert_allclose(ts[0].numpy(), 250 * np.arange(8), atol=1e-3)
    assert hear.get_scene_embeddings(torch.randn(2, 8000), v).shape == (2, v.scene_embedding_size)


def test_bad_input(aisfx_hear):
    with pytest.raises(ParameterError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(10), aisfx_hear)
    with pytest.raises(ParameterError, match="neither a pre-trained name"):
        hear.load_model("/no/such/run")


def test_load_model_from_cache_and_embed_cli(tmp_path, fsdd_dir):
    from safetensors.torch import save_file

    from roomtone.cli.main import main
    from roomtone.models.pretrained import weights_path

    torch.manual_seed(1)
    state = create_model("aisfx", num_classes=1).backbone.state_dict()
    dest = weights_path("aisfx", cache_dir=tmp_path / "cache")
    dest.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
    m = hear.load_model("aisfx", cache_dir=tmp_path / "cache")
    assert torch.equal(m.model.backbone.conv_block1.conv1.weight, state["conv_block1.conv1.weight"])
    files = [fsdd_dir / "1_jackson_0.wav", tmp_path / "missing.wav", fsdd_dir / "5_yweweler_3.wav"]
    out = tmp_path / "emb.npy"
    with pytest.raises(SystemExit) as done:
        main(["embed", "aisfx", *map(str, files), "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert done.value.code in (0, None)
    arr = np.load(out)
    assert arr.shape == (3, 512) and np.isnan(arr[1]).all() and np.isfinite(arr[[0, 2]]).all()
    index = (tmp_path / "emb.files.csv").read_text().splitlines()
    assert index[2].startswith("1,") and "error" in index[2] and index[1].endswith(",ok")
