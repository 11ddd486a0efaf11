"""ONNX export of the pre-trained backbones (PANNs CNN6, aiSFX): waveform in, logits out, dynamic batch and time.

Weights are random (fixed seed) with calibrated BatchNorm statistics: export correctness does not depend on
the published weights. onnxruntime is compared with eager torch (eval mode) on batch 1 and 4, on input
shorter than the network's ``min_samples`` (zero padded inside the graph, as in eager mode), 1 s and 2.3 s.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from roomtone.models import create_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# onnxruntime vs torch: max |difference| <= REL_TOL * max |torch output| (measured: <= 7e-7 of the scale)
REL_TOL = 1e-4


def _calibrated(name: str) -> torch.nn.Module:
    """``name`` with 5 classes, seeded random weights and BatchNorm statistics from a few train-mode batches."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, model.sr // 2) * 0.1)
    return model.eval()


def _inputs(batch: int, n: int) -> torch.Tensor:
    rng = np.random.default_rng(batch * 100_000 + n)
    y = rng.standard_normal((batch, n)) * np.linspace(0.01, 0.3, n)  # rising level
    return torch.from_numpy(y.astype(np.float32))


def _export(model: torch.nn.Module, path) -> None:
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (_inputs(2, model.sr),), dynamo=True, input_names=["waveform"],
                                 output_names=["logits"], dynamic_shapes={"waveform": {0: batch, 1: time}})
    prog.save(str(path))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["panns-cnn6", "aisfx", "speech-embedding"])
def test_backbone_exports_with_dynamic_batch_and_time(tmp_path, name):
    model = _calibrated(name)
    path = tmp_path / f"{name}.onnx"
    _export(model, path)
    assert not {n.op_type for n in onnx.load(str(path)).graph.node} & {"STFT", "DFT"}  # conv1d STFT
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 4):
        for n in (model.min_samples // 3, model.sr, int(2.3 * model.sr)):
            x = _inputs(b, n)
            got = session.run(None, {"waveform": x.numpy()})[0]
            with torch.no_grad():
                ref = model(x).numpy()
            assert got.shape == ref.shape == (b, 5)
            assert np.abs(got - ref).max() <= REL_TOL * np.abs(ref).max(), (b, n)


@pytest.mark.parametrize("n", [1, 100, 4800, 4801, 9000])
def test_export_branch_of_padding_equals_eager(monkeypatch, n):
    """While exporting, the graph pads by ``max(0, min_samples - time)``; run eagerly it equals the eager ``if``."""
    import roomtone.models.panns as panns

    x = _inputs(2, n)
    eager = panns.padded_batch(x, 4801)
    assert eager.shape == (2, max(n, 4801))
    monkeypatch.setattr(panns, "symbolic_export", lambda: True)
    assert torch.equal(panns.padded_batch(x, 4801), eager)


@pytest.mark.parametrize("frames", [3, 16, 40])
def test_vgg_export_branch_of_padding_equals_eager(monkeypatch, frames):
    import roomtone.models.vgg as vgg
    from roomtone.models import create_model

    torch.manual_seed(0)
    model = create_model("vgg_tiny", num_classes=3, sr=8000, n_fft=256, hop_length=80).eval()
    s = torch.randn(2, 1, model.frontend.n_mels, frames)
    with torch.no_grad():
        eager = model.forward_spectrogram(s)
        monkeypatch.setattr(vgg, "symbolic_export", lambda: True)
        assert torch.equal(model.forward_spectrogram(s), eager)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name, mode, sr", [("aisfx", "probe", 44100), ("speech-embedding", "finetune", 16000)])
def test_pretrained_run_exports(tmp_path, fsdd_dir, monkeypatch, name, mode, sr):
    """``roomtone export RUN --format onnx`` on a run trained with ``--pretrained NAME --mode MODE`` (random
    backbone, no download; both modes save a classifier with the input standardization folded in)."""
    from safetensors.torch import save_file

    from roomtone.config import PROBE_OVERRIDES, TrainConfig
    from roomtone.models.pretrained import weights_path
    from roomtone.prepare.manifest import ManifestRow, write_manifest
    from roomtone.train import fit, load_run
    from roomtone.train.export import ScoresModel, export_model

    torch.manual_seed(0)
    dest = weights_path(name, cache_dir=tmp_path / "cache")
    dest.parent.mkdir(parents=True)
    backbone = create_model(name, num_classes=1).backbone.state_dict()
    save_file({k: v.contiguous() for k, v in backbone.items()}, str(dest))
    monkeypatch.setenv("ROOMTONE_CACHE", str(tmp_path / "cache"))
    rows = [ManifestRow(str(fsdd_dir / f"{digit}_{spk}_0.wav"), digit, spk, split)
            for digit in ("0", "1") for spk, split in (("jackson", "train"), ("theo", "valid"), ("george", "test"))]
    data = tmp_path / "prepared"
    data.mkdir()
    write_manifest(data, rows)
    (data / "prepare.json").write_text(json.dumps({"labels": ["0", "1"], "sr": 8000, "clip_seconds": 0.6}))
    run = tmp_path / "run"
    cfg = TrainConfig(pretrained=name, mode=mode, epochs=1, batch_size=2, clip_seconds=None, patience=None)
    cfg = cfg.replace(**PROBE_OVERRIDES) if mode == "probe" else cfg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 4000 Hz bandwidth warning
        fit(cfg, data_dir=data, out_dir=run, progress=False)

    report = export_model(run, format="onnx")
    assert report["path"] == str(run / "model.onnx") and report["labels"] == ["0", "1"] and report["sr"] == sr
    assert report["max_abs_diff"] <= 1e-4
    model, _, _ = load_run(run)
    scores = ScoresModel(model).eval()
    session = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
    for n in (2000, sr):  # shorter than min_samples (padded in the graph) and 1 s, batch 3
        x = _inputs(3, n)
        got = session.run(None, {"waveform": x.numpy()})[0]
        with torch.no_grad():
            ref = scores(x).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
