"""speech-embedding: roomtone's torch port vs the wheel's ONNX graphs under onnxruntime, on real FSDD audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from roomtone.errors import CheckpointError, DownloadError, ParameterError
from roomtone.models import create_model
from roomtone.models import speech_embedding_weights as SE
from roomtone.models.speech_embedding import SpeechEmbedding


@pytest.fixture(scope="module")
def wheel(user_cache) -> Path:
    """The pinned wheel, placed in the user's cache folder (``roomtone pretrained fetch`` looks there first)."""
    path = user_cache / "pretrained" / "speech-embedding" / SE.WHEEL
    if not path.is_file():
        pytest.skip(f"{SE.WHEEL} not found at {path}: run `pip download --no-deps {SE.REQUIREMENT} -d {path.parent}`")
    return path


def _sessions(wheel: Path):
    ort = pytest.importorskip("onnxruntime")
    emb, mel = SE.wheel_members(wheel)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    make = lambda raw: ort.InferenceSession(raw, opts, providers=["CPUExecutionProvider"])  # noqa: E731
    return make(mel), make(emb)


def _onnx_embeddings(s_mel, s_emb, y: np.ndarray) -> np.ndarray:
    """The wheel's pipeline: int16-scaled audio -> mel graph -> dB / 10 + 2 -> 76-frame windows, hop 8 -> (n, 96)."""
    mel = s_mel.run(None, {"input": (y[None] * 32768.0).astype(np.float32)})[0][0, 0] / 10.0 + 2.0  # (frames, 32)
    n = (mel.shape[0] - 76) // 8 + 1
    windows = np.stack([mel[8 * i:8 * i + 76] for i in range(n)])[..., None].astype(np.float32)
    return s_emb.run(None, {"input_1": windows})[0][:, 0, 0]


@pytest.mark.data
def test_port_matches_onnxruntime_on_real_clips(wheel, fsdd_dir):
    from roomtone.audio import load

    s_mel, s_emb = _sessions(wheel)
    model = SpeechEmbedding(num_classes=3, pad_seconds=0.25)
    model.backbone.load_state_dict(SE.state_from_wheel(wheel))
    model.eval()
    a = load(fsdd_dir / "0_jackson_0.wav", sr=16000)[0]
    b = load(fsdd_dir / "7_nicolas_3.wav", sr=16000)[0]
    c = load(fsdd_dir / "4_theo_12.wav", sr=16000)[0]
    clips = [a[:4000], b, torch.cat([a, b, c])]  # 0.25 s (shorter than one window), ~0.5 s, ~1.5 s
    for y in clips:
        padded = torch.nn.functional.pad(y, (model.pad_samples, model.pad_samples))
        padded = torch.nn.functional.pad(padded, (0, max(0, model.min_samples - padded.shape[-1])))
        want = _onnx_embeddings(s_mel, s_emb, padded.numpy())
        with torch.no_grad():
            got = model.forward_features(y[None])[0].T.numpy()  # (windows, 96)
        assert got.shape == want.shape and want.shape[0] >= 1
        scale = np.abs(want).max()
        assert scale > 1.0  # a real embedding, not a degenerate one
        assert np.abs(got - want).max() <= 1e-4 * scale
        # the pooled embedding and the logits follow from the same map
        with torch.no_grad():
            pooled = model.forward_head(model.forward_features(y[None]), pre_logits=True)
        np.testing.assert_allclose(pooled[0].numpy(), want.mean(0), atol=1e-4 * scale)


def test_frontend_is_the_wheels_front_end(wheel):
    _emb, mel = SE.wheel_members(wheel)
    SE.check_frontend(mel)  # filterbank and window equal roomtone's (else CheckpointError)


def test_converter_checks_the_graph_and_the_hash(wheel, tmp_path):
    onnx = pytest.importorskip("onnx")
    emb, _mel = SE.wheel_members(wheel)
    state = SE.embedding_state(emb)
    assert len(state) == 39 and state["convs.0.weight"].shape == (24, 1, 3, 3) and "convs.19.bias" not in state
    proto = onnx.load_from_string(emb)
    for node in proto.graph.node:
        if node.op_type == "LeakyRelu":
            node.attribute[0].f = 0.1
    with pytest.raises(CheckpointError, match="activation leak"):
        SE.embedding_state(proto.SerializeToString())
    bad = tmp_path / SE.WHEEL
    bad.write_bytes(wheel.read_bytes()[:-10])
    with pytest.raises(DownloadError, match=SE.WHEEL_SHA256):
        SE.state_from_wheel(bad)


def test_shapes_contract_and_errors():
    m = create_model("speech-embedding", num_classes=4).eval()
    assert m.sr == 16000 and m.embedding_size == 96
    x = torch.randn(2, 16000)
    with torch.no_grad():
        feats = m.forward_features(x)
        frames = (16000 + 2 * m.pad_samples - 512) // 160 + 1
        assert feats.shape == (2, 96, (frames - 76) // 8 + 1)
        assert m(x).shape == (2, 4)
        assert m.forward_head(feats, pre_logits=True).shape == (2, 96)
        assert m(torch.randn(1, 100)).shape == (1, 4)  # shorter than a window: padded
    times = m.frame_times(feats.shape[-1])
    assert times[1] - times[0] == pytest.approx(0.08) and times[0] == pytest.approx((12512 / 2 - 8000) / 16000)
    m.reset_classifier(7)
    assert m.get_classifier().out_features == 7
    with pytest.raises(ParameterError, match="pad_seconds=-1"):
        SpeechEmbedding(pad_seconds=-1)
    with pytest.raises(ParameterError, match="in_chans=2"):
        create_model("speech-embedding", num_classes=2, in_chans=2)
