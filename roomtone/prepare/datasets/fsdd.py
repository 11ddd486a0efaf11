"""Free Spoken Digit Dataset (FSDD): 3000 recordings of spoken digits, 6 speakers, 8 kHz, CC BY-SA 4.0.

``fsdd()`` downloads the dataset from its public GitHub repository (Jakobovski/free-spoken-digit-dataset,
archive of a pinned commit) into ``~/.cache/roomtone`` on first use, checks it, and writes a manifest
with the digit as label and the speaker as group. The return value is a folder holding
``manifest.csv``, so it plugs straight into ``prepare``::

    from roomtone.prepare.datasets import fsdd
    from roomtone.prepare.pipeline import prepare
    prepare(fsdd(), "prepared/fsdd")                      # speaker-independent split
    prepare(fsdd(official_split=True), "prepared/fsdd-official")  # takes 0-4 are test

Integrity check: GitHub does not promise byte-stable generated archives, so the check is on the
*content*: SHA-256 over the sorted list of ``(file name, SHA-256 of the file bytes)`` of the 3000
``recordings/*.wav`` of the pinned commit (``RECORDINGS_SHA256``). A mismatch is a DownloadError.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from roomtone.errors import DataError, DownloadError

COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{COMMIT}.tar.gz"
RECORDINGS_SHA256 = "99aa5e3a7c822ab55b2a3b47e0b05aeb9f011c54837a12e3831ad24108330829"
N_FILES = 3000
NAME = re.compile(r"(?P<label>\d)_(?P<group>[a-z]+)_(?P<take>\d+)\.wav")


def default_cache_dir() -> Path:
    """``$ROOMTONE_CACHE`` or ``~/.cache/roomtone`` (read when called, not at import)."""
    return Path(os.environ.get("ROOMTONE_CACHE") or Path.home() / ".cache" / "roomtone")


def recordings_digest(folder: str | os.PathLike) -> tuple[int, str]:
    """``(number of wav files, content digest)`` of a recordings folder (see the module docstring)."""
    h = hashlib.sha256()
    files = sorted(Path(folder).glob("*.wav"))
    for p in files:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).hexdigest().encode() + b"\n")
    return len(files), h.hexdigest()


def _recordings_dir(root: Path) -> Path | None:
    for cand in (root / "recordings", root):
        if cand.is_dir() and any(cand.glob("*_*_*.wav")):
            return cand
    return None


def download_fsdd(dest: str | os.PathLike, *, url: str = URL, timeout: float = 60.0, progress=None) -> Path:
    """Download the pinned archive, extract ``recordings/*.wav`` into ``dest/recordings`` and verify them.

    Raises:
        DownloadError: no network / HTTP error / bad archive / content digest mismatch; the message
            says where to put the files by hand.
    """
    from urllib.error import URLError
    from urllib.request import urlopen

    dest = Path(dest)
    manual = (f"download {URL} by hand (or clone the repository at commit {COMMIT[:12]}), and put its "
              f"recordings/*.wav into {dest / 'recordings'} (or pass root= to the folder holding them)")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = Path(tmp) / "fsdd.tar.gz"
        try:
            with urlopen(url, timeout=timeout) as resp, open(archive, "wb") as f:
                while block := resp.read(1 << 20):
                    f.write(block)
                    if progress:
                        progress(len(block))
        except (URLError, OSError, ValueError) as exc:
            raise DownloadError(f"could not download FSDD from {url} ({getattr(exc, 'reason', exc)}); {manual}") from exc
        staging = Path(tmp) / "recordings"
        staging.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for m in tar:
                    parts = m.name.split("/")
                    if m.isfile() and len(parts) >= 2 and parts[-2] == "recordings" and NAME.fullmatch(parts[-1]):
                        src = tar.extractfile(m)
                        with open(staging / parts[-1], "wb") as out:  # basename only: no path traversal
                            shutil.copyfileobj(src, out)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DownloadError(f"{url}: the downloaded archive is damaged ({exc}); {manual}") from exc
        n, digest = recordings_digest(staging)
        if n != N_FILES or digest != RECORDINGS_SHA256:
            raise DownloadError(f"{url}: content check failed ({n} files, digest {digest[:16]}..., expected "
                                f"{N_FILES} files, {RECORDINGS_SHA256[:16]}...); {manual}")
        final = dest / "recordings"
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    return final


def fsdd_rows(recordings: str | os.PathLike, *, official_split: bool = False):
    """Manifest rows for an FSDD recordings folder: label = digit, group = speaker, extra ``take``;
    ``official_split`` sets ``split=test`` for takes 0-4 (the others stay unassigned -> train/valid)."""
    from roomtone.prepare.manifest import ManifestRow

    rows = []
    for p in sorted(Path(recordings).glob("*.wav")):
        m = NAME.fullmatch(p.name)
        if m is None:
            continue
        take = int(m["take"])
        rows.append(ManifestRow(path=str(p.resolve()), label=m["label"], group=m["group"],
                                split="test" if official_split and take < 5 else "", extra={"take": str(take)}))
    return rows


def fsdd(root: str | os.PathLike | None = None, *, download: bool = True, cache_dir: str | os.PathLike | None = None,
         official_split: bool = False, verify: bool = True, url: str = URL) -> Path:
    """The FSDD as a folder holding ``manifest.csv`` (label = digit, group = speaker).

    Args:
        root: a folder holding the recordings (``root/recordings/*.wav`` or ``root/*.wav``). None: the
            copy under ``cache_dir``, downloaded when missing.
        download: allow downloading when the recordings are not there.
        cache_dir: where downloads and manifests go (default ``~/.cache/roomtone``, or ``$ROOMTONE_CACHE``).
        official_split: takes 0-4 are test (FSDD's README); else no split (``prepare`` then splits by speaker).
        verify: check the file count and the content digest of the recordings.
        url: archive URL (tests point it at an unreachable address).

    Returns:
        The folder with ``manifest.csv`` (``cache_dir/fsdd-manifest[-official]``).

    Raises:
        DownloadError: offline or failed download (the message says where to put the files by hand).
        DataError: the recordings under ``root`` are incomplete or differ from the pinned release.
    """
    from roomtone.prepare.manifest import write_manifest

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    base = Path(root) if root is not None else cache / "fsdd"
    rec = _recordings_dir(base)
    if rec is None:
        if root is not None or not download:
            raise DownloadError(f"no FSDD recordings under {base}; download {URL} and put its recordings/*.wav "
                                f"into {base / 'recordings'}" + ("" if download else ", or call fsdd(download=True)"))
        rec = download_fsdd(base, url=url)
    if verify:
        n, digest = recordings_digest(rec)
        if n != N_FILES or digest != RECORDINGS_SHA256:
            raise DataError(f"{rec}: {n} wav files with digest {digest[:16]}...; the pinned FSDD release has "
                            f"{N_FILES} files, digest {RECORDINGS_SHA256[:16]}... (pass verify=False to use it anyway)")
    out = cache / ("fsdd-manifest-official" if official_split else "fsdd-manifest")
    write_manifest(out / "manifest.csv", fsdd_rows(rec, official_split=official_split))
    return out
