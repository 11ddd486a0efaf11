"""The HEAR API (Holistic Evaluation of Audio Representations) over roomtone models.

    from roomtone import hear
    model = hear.load_model("speech-embedding")   # a pre-trained name, or a RUN_DIR from `roomtone train`
    emb, ts = hear.get_timestamp_embeddings(audio, model)   # audio (n_sounds, n_samples) at model.sample_rate
    scene = hear.get_scene_embeddings(audio, model)         # (n_sounds, scene_embedding_size)

Both go through the model contract only: an embedding is ``forward_head(forward_features(x),
pre_logits=True)``. The scene embedding is that of the whole sound; the timestamp embeddings are those
of windows of ``window_seconds`` centred every ``hop_seconds`` (default 50 ms, HEAR's suggested maximum),
the sound zero padded by half a window on both sides. ``ts`` ``(n_sounds, n_timestamps)`` holds the
window centres in **milliseconds**: 0, hop, 2 hop, ... up to the sound's end.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from roomtone.errors import ParameterError

DEFAULT_MODEL = "aisfx"
HOP_SECONDS = 0.05
WINDOW_SECONDS = 1.0


class HearModel(nn.Module):
    """A roomtone model with the HEAR attributes ``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size``.

    ``window_seconds`` / ``hop_seconds``: length and spacing of the windows behind the timestamp embeddings.
    """

    def __init__(self, model: nn.Module, *, window_seconds: float = WINDOW_SECONDS, hop_seconds: float = HOP_SECONDS,
                 name: str = ""):
        super().__init__()
        if not (isinstance(window_seconds, (int, float)) and isinstance(hop_seconds, (int, float))
                and window_seconds > 0 and hop_seconds > 0):
            raise ParameterError(f"window_seconds={window_seconds!r} and hop_seconds={hop_seconds!r} must be > 0")
        self.model = model.eval()
        self.name = name
        self.sample_rate = int(model.sr)
        self.window_seconds, self.hop_seconds = float(window_seconds), float(hop_seconds)
        with torch.no_grad():
            self.scene_embedding_size = int(_embed(model, torch.zeros(1, self.sample_rate)).shape[-1])
        self.timestamp_embedding_size = self.scene_embedding_size

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return _embed(self.model, audio)


def _embed(model: nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """``(batch, time) -> (batch, D)``: the contract's pooled embedding."""
    return model.forward_head(model.forward_features(audio), pre_logits=True)


def load_model(model_file_path: str | os.PathLike = "", **kwargs) -> HearModel:
    """HEAR ``load_model``: a pre-trained name (``speech-embedding``, ``aisfx``, ``panns-cnn14``, ... fetched
    to the cache), or a RUN_DIR written by ``roomtone train``. ``""`` loads ``aisfx``. Keyword arguments go to :class:`HearModel`
    (``window_seconds``, ``hop_seconds``) except ``cache_dir``, which goes to the fetch.
    """
    cache_dir = kwargs.pop("cache_dir", None)
    target = str(model_file_path) or DEFAULT_MODEL
    from roomtone.models import create_model
    from roomtone.models.pretrained import CATALOG

    if target in CATALOG:
        # PANNs keep their AudioSet classifier (harmless for embeddings); the others get a 1-class head
        n = 527 if target.startswith("panns-") else 1
        model = create_model(target, num_classes=n, pretrained=True, cache_dir=cache_dir)
        return HearModel(model, name=target, **kwargs)
    path = Path(target)
    if path.is_dir():
        from roomtone.train import load_run

        model, _labels, _config = load_run(path)
        return HearModel(model, name=str(path), **kwargs)
    raise ParameterError(f"model_file_path={target!r} is neither a pre-trained name ({sorted(CATALOG)}) "
                         f"nor a run directory")


def _check_audio(audio, model: HearModel) -> torch.Tensor:
    if not isinstance(model, HearModel):
        raise ParameterError(f"model must come from roomtone.hear.load_model; got {type(model).__name__}")
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.dim() != 2:
        raise ParameterError(f"audio must be (n_sounds, n_samples) at {model.sample_rate} Hz; got shape {tuple(audio.shape)}")
    return audio


def _device(model: HearModel) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def get_timestamp_embeddings(audio, model: HearModel, *, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings (n_sounds, n_timestamps, D), timestamps (n_sounds, n_timestamps) in ms)``; one window
    centred every ``model.hop_seconds`` from 0 to the end of the sound."""
    audio = _check_audio(audio, model)
    dev = _device(model)
    sr = model.sample_rate
    n, n_samples = audio.shape
    win, hop = max(1, round(model.window_seconds * sr)), max(1, round(model.hop_seconds * sr))
    n_win = 1 + (n_samples - 1) // hop if n_samples else 1
    left = win // 2
    padded = torch.nn.functional.pad(audio, (left, max(0, (n_win - 1) * hop + win - left - n_samples)))
    flat = padded.unfold(1, win, hop)[:, :n_win].reshape(-1, win)  # (n * n_win, win)
    outs = [_embed(model.model, flat[i:i + batch_size].to(dev)).float().cpu() for i in range(0, flat.shape[0], batch_size)]
    emb = torch.cat(outs).reshape(n, n_win, -1) if outs else torch.zeros(n, n_win, model.timestamp_embedding_size)
    times = (torch.arange(n_win, dtype=torch.float64) * hop + (win / 2 - left)) / sr * 1000.0
    return emb, times.to(torch.float32).unsqueeze(0).expand(n, -1).contiguous()


@torch.no_grad()
def get_scene_embeddings(audio, model: HearModel, *, batch_size: int = 16) -> torch.Tensor:
    """``(n_sounds, scene_embedding_size)``: the model's clip embedding of each sound."""
    audio = _check_audio(audio, model)
    dev = _device(model)
    outs = [_embed(model.model, audio[i:i + batch_size].to(dev)).float().cpu() for i in range(0, audio.shape[0], batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0, model.scene_embedding_size)


def embed_files(model: str | os.PathLike, files, *, out: str | os.PathLike, timestamps: bool = False,
                cache_dir: str | os.PathLike | None = None, overwrite: bool = False) -> dict:
    """Scene embeddings of audio ``files`` (resampled to the model's rate) saved to ``out`` (.npy, float32).

    A file that cannot be read gets a NaN row and is listed in ``OUT.files.csv`` (columns
    ``row,path,status``) and in the returned ``failed`` list; the batch goes on. With ``timestamps``,
    ``OUT.timestamps.npz`` holds ``emb_<row>`` and ``ms_<row>`` arrays per file.
    Files are written atomically; an existing ``out`` is replaced only with ``overwrite=True``.
    Returns ``{"out", "index", "shape", "failed": [(path, reason), ...]}``.
    """
    import csv

    import numpy as np

    from roomtone.audio import load
    from roomtone.errors import RoomtoneError
    from roomtone.files import atomic_path, check_output

    out = Path(out)
    if out.suffix != ".npy":
        out = out.with_suffix(out.suffix + ".npy") if out.suffix else out.with_suffix(".npy")
    check_output(out, overwrite=overwrite)
    hm = load_model(model, cache_dir=cache_dir)
    rows, failed, extra = [], [], {}
    for i, f in enumerate(files):
        try:
            y, _ = load(f, sr=hm.sample_rate, mono=True)
        except (RoomtoneError, OSError, RuntimeError) as exc:
            failed.append((str(f), str(exc)))
            rows.append(np.full(hm.scene_embedding_size, np.nan, dtype=np.float32))
            continue
        rows.append(get_scene_embeddings(y[None], hm)[0].numpy())
        if timestamps:
            emb, ms = get_timestamp_embeddings(y[None], hm)
            extra[f"emb_{i}"], extra[f"ms_{i}"] = emb[0].numpy(), ms[0].numpy()
    arr = np.stack(rows).astype(np.float32) if rows else np.zeros((0, hm.scene_embedding_size), np.float32)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)
    index = out.with_name(out.stem + ".files.csv")
    bad = dict(failed)
    with atomic_path(index) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "path", "status"])
        for i, f in enumerate(files):
            w.writerow([i, str(f), "error: " + bad[str(f)] if str(f) in bad else "ok"])
    if timestamps:
        with atomic_path(out.with_name(out.stem + ".timestamps.npz")) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **extra)
    return {"out": str(out), "index": str(index), "shape": arr.shape, "failed": failed}
