"""FSDD helper: manifest from the local copy, official split, download (mocked) with content check, offline error."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from urllib.error import URLError

import pytest

from roomtone.errors import DataError, DownloadError
from roomtone.prepare.datasets import fsdd as fsdd_entry
from roomtone.prepare.datasets.fsdd import COMMIT, fsdd
from roomtone.prepare.manifest import read_manifest

pytestmark = pytest.mark.data


def test_local_copy_manifest(fsdd_dir, tmp_path):
    out = fsdd_entry(fsdd_dir.parent, cache_dir=tmp_path)  # roomtone.prepare.datasets.fsdd(...) works
    rows = read_manifest(out)
    assert len(rows) == 3000
    assert Counter(r.label for r in rows) == {str(d): 300 for d in range(10)}
    assert len({r.group for r in rows}) == 6 and all(r.split == "" for r in rows)
    off = read_manifest(fsdd(fsdd_dir, cache_dir=tmp_path, official_split=True))
    test = [r for r in off if r.split == "test"]
    assert len(test) == 300 and all(int(r.extra["take"]) < 5 for r in test)


def test_prepare_from_fsdd_is_speaker_independent(fsdd_dir, tmp_path):
    from roomtone.prepare.pipeline import prepare
    from roomtone.prepare.splits import groups_overlap

    out = prepare(fsdd(fsdd_dir, cache_dir=tmp_path), tmp_path / "prep", html=False)
    rows = read_manifest(out)
    assert len(rows) == 3000 and groups_overlap(rows) == {}


def test_offline_gives_clear_error(tmp_path, monkeypatch):
    with pytest.raises(DownloadError, match="by hand") as e:
        fsdd(cache_dir=tmp_path, url="http://127.0.0.1:9/unreachable.tar.gz")
    assert str(tmp_path / "fsdd" / "recordings") in str(e.value) and COMMIT[:12] in str(e.value)

    def offline(*a, **k):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DownloadError, match="name resolution"):
        fsdd(cache_dir=tmp_path / "b")
    with pytest.raises(DownloadError, match="no FSDD recordings"):
        fsdd(cache_dir=tmp_path / "c", download=False)


def _archive(files) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for p in files:
            tar.add(str(p), arcname=f"free-spoken-digit-dataset-{COMMIT}/recordings/{p.name}")
        info = tarfile.TarInfo(f"free-spoken-digit-dataset-{COMMIT}/README.md")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()


@pytest.mark.slow
def test_download_extracts_and_verifies(fsdd_dir, tmp_path, monkeypatch):
    good = _archive(sorted(fsdd_dir.glob("*.wav")))
    payload = {"data": good}
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout=None: io.BytesIO(payload["data"]))
    out = fsdd(cache_dir=tmp_path)
    assert len(read_manifest(out)) == 3000
    assert len(list((tmp_path / "fsdd" / "recordings").glob("*.wav"))) == 3000
    payload["data"] = _archive(sorted(fsdd_dir.glob("*.wav"))[:10])  # incomplete release -> rejected
    with pytest.raises(DownloadError, match="content check failed"):
        fsdd(cache_dir=tmp_path / "x")
    payload["data"] = good[: len(good) // 3]  # cut off mid-way
    with pytest.raises(DownloadError, match="damaged"):
        fsdd(cache_dir=tmp_path / "y")


def test_tampered_local_copy_is_refused(fsdd_dir, tmp_path):
    import shutil

    for p in sorted(fsdd_dir.glob("*.wav"))[:20]:
        shutil.copy(p, tmp_path / p.name)
    with pytest.raises(DataError, match="20 wav files"):
        fsdd(tmp_path, cache_dir=tmp_path / "c")
    assert len(read_manifest(fsdd(tmp_path, cache_dir=tmp_path / "c", verify=False))) == 20
