"""A log-mel (or CQT) front end + small conv net exports to ONNX (waveform in) and runs in onnxruntime.

Method: while exporting, ``stft_impl="auto"`` switches the STFT to a strided conv1d with a fixed DFT
kernel (no complex numbers, no ONNX STFT op needed), so the graph is Conv/Mul/Add/MatMul/Log only. The
CQT likewise runs its octave decimation filter as a stride-2 conv1d instead of an FFT convolution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roomtone.features import CQT, MFCC, Resample, log_mel

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

DB_TOL = 1e-3  # issue bar: onnxruntime vs torch, in dB on log-mel
# CQT magnitude, onnxruntime vs torch (float32): |error| <= 1e-5 of each example's peak (-100 dB; measured
# 7e-7), and <= 0.01 dB on 20 log10(|C| / peak) floored at -80 dB (measured 0.0025 dB, in the quietest
# bins; eager float32 vs float64 alone differs by 0.0028 dB there)
CQT_PEAK_TOL = 1e-5
CQT_DB_TOL = 0.01


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.resample = Resample(22050, 16000)  # files at 22.05 kHz, model at 16 kHz
        self.frontend = log_mel(sr=16000, n_fft=512, hop_length=160, n_mels=40, fmin=50.0, fmax=7600.0)
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        feats = self.frontend(self.resample(x))
        h = torch.relu(self.conv(feats[:, None]))
        return feats, self.head(h.mean(dim=(2, 3)))


def _inputs(batch, n):
    rng = np.random.default_rng(batch * 1000 + n)
    y = rng.standard_normal((batch, n)) * np.linspace(1e-3, 1.0, n)  # 60 dB of level change
    return torch.from_numpy(y.astype(np.float32))


def _export_fft_free(model, path, *, example_len: int, min_time: int, outputs: list[str]):
    """Dynamo export with dynamic batch and time; the graph must have no STFT/DFT op. Returns an ORT session."""
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time", min=min_time)
    torch.onnx.export(model, (_inputs(2, example_len),), str(path), input_names=["audio"], output_names=outputs,
                      dynamic_shapes={"x": {0: batch, 1: time}})
    op_types = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert not op_types & {"STFT", "DFT"}
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_log_mel_net_exports_with_dynamic_batch_and_time(tmp_path):
    model = _Net().eval()
    session = _export_fft_free(model, tmp_path / "net.onnx", example_len=22050, min_time=1024,
                               outputs=["logmel", "logits"])
    for b in (1, 8):
        for n in (22050, 33333):
            x = _inputs(b, n)
            feats, logits = session.run(None, {"audio": x.numpy()})
            with torch.no_grad():
                ref_feats, ref_logits = model(x)  # eager torch uses torch.stft
            assert feats.shape == (b, 40, 1 + -(-n * 16000 // 22050) // 160)
            assert np.abs(feats - ref_feats.numpy()).max() <= DB_TOL
            assert np.abs(logits - ref_logits.numpy()).max() <= 1e-3


@pytest.mark.slow
def test_mfcc_exports_with_legacy_exporter(tmp_path):
    model = MFCC(16000, 13, 512, 160, n_mels=40).eval()
    path = tmp_path / "mfcc.onnx"
    torch.onnx.export(model, (_inputs(1, 22050),), str(path), dynamo=False, input_names=["audio"],
                      output_names=["mfcc"], dynamic_axes={"audio": {0: "batch", 1: "time"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, n in ((1, 22050), (8, 30001)):
        x = _inputs(b, n)
        out = session.run(None, {"audio": x.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-3


class _CqtNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.frontend = CQT(sr=16000, hop_length=256, n_bins=72, fmin=32.7)
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        cqt = self.frontend(x)
        h = torch.relu(self.conv(torch.log(cqt + 1e-6)[:, None]))
        return cqt, self.head(h.mean(dim=(2, 3)))


def _db_re_peak(mag, peak):
    return np.maximum(20 * np.log10(np.maximum(mag, 1e-30) / peak), -80.0)


@pytest.mark.slow
def test_cqt_net_exports_with_dynamic_batch_and_time(tmp_path):
    model = _CqtNet().eval()
    session = _export_fft_free(model, tmp_path / "cqt.onnx", example_len=16000, min_time=4096,
                               outputs=["cqt", "logits"])
    for b, n in ((1, 16000), (8, 23457)):
        x = _inputs(b, n)
        cqt, logits = session.run(None, {"audio": x.numpy()})
        with torch.no_grad():
            ref, ref_logits = (t.numpy() for t in model(x))  # eager torch decimates through the FFT
        assert cqt.shape == ref.shape == (b, 72, 1 + n // 256)
        peak = ref.max(axis=(1, 2), keepdims=True)
        assert (np.abs(cqt - ref) / peak).max() <= CQT_PEAK_TOL
        assert np.abs(_db_re_peak(cqt, peak) - _db_re_peak(ref, peak)).max() <= CQT_DB_TOL
        assert np.abs(logits - ref_logits).max() <= 1e-3
