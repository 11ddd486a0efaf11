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
    n_frames = (1 + 2 * 44100 // 1024) // 8
    assert emb.shape == (3, n_frames, 512) and ts.shape == (3, n_frames)
    # centre of pooled frame i: ((i + 0.5) * 8 - 0.5) hops of 1024 samples, in ms
    expected = ((np.arange(n_frames) + 0.5) * 8 - 0.5) * 1024 / 44100 * 1000
    np.testing.assert_allclose(ts[0].numpy(), expected, rtol=1e-5)
    assert torch.equal(ts[0], ts[2]) and ts.max() < 2000
    scene = hear.get_scene_embeddings(audio, m)
    assert scene.shape == (3, 512)
    # the scene embedding is the max over the frame maps (aiSFX pooling)
    torch.testing.assert_close(scene, emb.amax(dim=1), atol=1e-5, rtol=1e-5)


def test_batching_does_not_change_results(aisfx_hear):
    audio = torch.randn(5, 30000) * 0.1
    a = hear.get_scene_embeddings(audio, aisfx_hear, batch_size=2)
    b = hear.get_scene_embeddings(audio, aisfx_hear, batch_size=5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_panns_and_sliding_window_models():
    torch.manual_seed(0)
    p = hear.HearModel(create_model("cnn6", num_classes=527))
    emb, ts = hear.get_timestamp_embeddings(torch.randn(2, 32000), p)
    assert emb.shape[0] == 2 and emb.shape[2] == 512 and ts.shape == emb.shape[:2]
    assert abs(float(ts[0, 1] - ts[0, 0]) - 16 * 320 / 32000 * 1000) < 1e-3  # 16 STFT hops per row
    v = hear.HearModel(create_model("vgg", num_classes=3), window_seconds=0.5, hop_seconds=0.25)
    emb, ts = hear.get_timestamp_embeddings(torch.randn(2, v.sample_rate * 2), v)
    assert emb.shape == (2, 7, v.timestamp_embedding_size)  # windows at 0, .25, ..., 1.5 s
    np.testing.assert_allclose(ts[0].numpy(), 250 + 250 * np.arange(7), rtol=1e-6)
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
