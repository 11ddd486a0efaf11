"""The one model contract (timm-like) on every registered model, and the one door for weights."""

from __future__ import annotations

import pytest
import torch

from roomtone.errors import ParameterError
from roomtone.models import create_model, list_models, register_model
from roomtone.models.pretrained import CATALOG


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_the_contract(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=3).eval()
    assert isinstance(m.sr, int) and m.sr > 0 and isinstance(m.frontend, torch.nn.Module)
    x = torch.randn(2, m.sr) * 0.1
    with torch.no_grad():
        feats = m.forward_features(x)
        assert feats.dim() >= 3 and feats.shape[0] == 2  # an unpooled map, time last
        pooled = m.forward_head(feats, pre_logits=True)
        assert pooled.dim() == 2 and pooled.shape[0] == 2
        logits = m.forward_head(feats)
        torch.testing.assert_close(logits, m(x))
        assert logits.shape == (2, 3)
    assert isinstance(m.get_classifier(), torch.nn.Module)
    m.reset_classifier(5)
    with torch.no_grad():
        assert m(x).shape == (2, 5)


@pytest.mark.parametrize("name", ["effnet_s", "tcnet_s"])
def test_efficient_families_export_to_onnx_with_parity(name, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from roomtone.train.export import export_model

    torch.manual_seed(0)
    m = create_model(name, num_classes=4, n_fft=256, n_mels=32)
    m.train()
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for _ in range(3):
            m(torch.randn(8, 8000) * 0.1)
    rep = export_model(m.eval(), format="onnx", out=tmp_path / f"{name}.onnx", atol=1e-4)
    assert rep["max_abs_diff"] <= 1e-4 and len(rep["checked_lengths"]) == 4
    assert min(rep["checked_lengths"]) < m.min_frames * 80  # shorter than the pooling needs: padded in the graph


def test_registry_names_are_catalogue_names_and_one_door_for_weights(tmp_path, monkeypatch):
    assert set(CATALOG) <= set(list_models())
    for name, entry in CATALOG.items():
        assert entry.model == name
    with pytest.raises(ParameterError, match="'vgg' has no pre-trained weights"):
        create_model("vgg", num_classes=2, pretrained=True)
    with pytest.raises(ParameterError, match=r"has no argument 'channels'; its arguments are"):
        create_model("aisfx", num_classes=2, channels=3)
    from roomtone.errors import DownloadError
    from roomtone.models import pretrained as P

    # offline and nothing in the cache: the door says what to fetch (PANNs: Zenodo unreachable here)
    def offline(url, timeout):
        raise OSError("offline")

    monkeypatch.setattr(P, "_urlopen", offline)
    with pytest.raises(DownloadError, match="put the file at"):
        create_model("panns-cnn6", num_classes=2, pretrained=True, cache_dir=tmp_path)


def test_a_taken_name_is_refused():
    with pytest.raises(ParameterError, match="'aisfx' is already registered"):
        register_model(lambda **kw: None, name="aisfx")


def test_runs_saved_under_the_old_panns_names_still_build():
    from roomtone.train.run import build_model

    old = build_model({"name": "cnn6", "num_classes": 3})
    assert type(old) is type(create_model("panns-cnn6", num_classes=3)) and old.num_classes == 3
