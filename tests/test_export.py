"""Export: ONNX (onnxruntime) and TorchScript vs torch within 1e-4 on real FSDD clips of several lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.errors import ExportError, ParameterError
from roomtone.models import create_model
from roomtone.train.export import ScoresModel, export_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("vgg_tiny", num_classes=10, sr=8000, n_fft=256, hop_length=80, n_mels=32)
    # non-trivial BN statistics, as after training
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 8000) * 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def clips(fsdd_dir):
    from roomtone.audio import load

    files = ["0_george_0.wav", "7_jackson_12.wav", "9_theo_3.wav", "4_lucas_40.wav"]
    out = [load(fsdd_dir / f, sr=8000)[0] for f in files]
    assert len({int(x.shape[0]) for x in out}) >= 3  # several lengths
    return out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity_on_fsdd(model, clips, tmp_path, fmt):
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.ts")
    rep = export_model(model, format=fmt, out=out, labels=[str(i) for i in range(10)], check_inputs=clips, atol=1e-4)
    assert out.exists() and rep["max_abs_diff"] <= 1e-4
    ref_model = ScoresModel(model).eval()
    for x in clips:  # independent re-check of the written file, batch of 2
        batch = torch.stack([x, x.flip(0)])
        with torch.no_grad():
            ref = ref_model(batch).numpy()
        if fmt == "onnx":
            import onnxruntime as ort

            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: batch.numpy()})[0]
        else:
            got = torch.jit.load(str(out))(batch).detach().numpy()
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_export_refuses_mismatch(model, clips, tmp_path):
    with pytest.raises(ExportError, match="differs from torch"):
        export_model(model, format="torchscript", out=tmp_path / "m.ts", check_inputs=clips, atol=-1.0)
    assert not (tmp_path / "m.ts").exists()


def test_onnx_takes_input_shorter_than_the_pooling_needs(model, tmp_path):
    """The dynamo-exported file keeps the model's padding of short input in the graph: 50 ms and even a
    handful of samples give the torch model's scores (the default checks include a 50 ms chirp)."""
    import onnxruntime as ort

    rep = export_model(model, format="onnx", out=tmp_path / "m.onnx")
    pooled = model.min_frames * model.frontend.hop_length
    assert rep["min_samples"] == 2 and min(rep["checked_lengths"]) < pooled
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    ref_model = ScoresModel(model).eval()
    for n in (5, 300, pooled - 1, pooled + 1):
        x = torch.sin(torch.arange(2 * n, dtype=torch.float32).reshape(2, n) * 0.3) * 0.2
        with torch.no_grad():
            ref = ref_model(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_missing_onnx_is_a_missing_dependency_and_existing_file_is_kept(model, tmp_path, monkeypatch):
    import sys

    from roomtone.errors import MissingDependencyError, OutputExistsError

    out = tmp_path / "m.onnx"
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError, as in an install without it
    with pytest.raises(MissingDependencyError, match=r"pip install onnx onnxscript onnxruntime"):
        export_model(model, format="onnx", out=out)
    assert list(tmp_path.iterdir()) == []  # no temporary left behind
    out.write_bytes(b"an earlier export")
    with pytest.raises(OutputExistsError, match=r"exists; pass overwrite=True"):
        export_model(model, format="torchscript", out=out)
    assert out.read_bytes() == b"an earlier export"
    with pytest.raises(ParameterError, match="is a folder"):
        export_model(model, format="torchscript", out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
