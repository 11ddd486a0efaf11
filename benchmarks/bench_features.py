"""Feature layers vs librosa (per-clip loop and 2-D batch) and nnAudio: log-mel, MFCC, CQT, peak memory.

``python -m benchmarks features`` (``--quick`` for a smoke run). Times are the best of 7 repeats after
one warm-up; peak memory is the resident-set growth over the call, sampled every millisecond from
/proc/self/statm (sees numpy and torch allocations alike). All peers run in the same process, same run.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import warnings

import numpy as np
import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


class _PeakRSS:
    """Peak resident-set growth (bytes) while the block runs."""

    def __enter__(self):
        gc.collect()
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())
        self.growth = self.peak - self.base


def _measure(fn, repeats: int) -> tuple[float, float]:
    """(best seconds over ``repeats`` timed runs after one warm-up, peak RSS growth in MiB of one more run).
    Memory is sampled in a separate run: the sampling thread would otherwise take CPU from the timed code."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    with _PeakRSS() as mem:
        fn()
    return best, mem.growth / 2**20


def _one_thread(fn, repeats: int) -> tuple[float, float]:
    """The same measurement with ``torch.set_num_threads(1)``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(fn, repeats)
    finally:
        torch.set_num_threads(before)


def _one_blas_thread():
    """NumPy's BLAS limited to one thread for librosa's per-clip loop: its tiny products gain nothing from
    threads, and idle BLAS threads spin on the second core for a while after each call, slowing whatever runs
    next (here: roomtone's multi-threaded run of the same pair)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _signals(n: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    base = np.sin(2 * np.pi * 440 * t * (1 + 0.1 * t))
    return (0.3 * base + 0.05 * rng.standard_normal((n, t.size))).astype(np.float32)


def _per_example_db(mel: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - top_db)


def _nnaudio():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nnAudio import features as nnf
        return nnf
    except Exception:  # nnAudio is optional; any import failure means "not measured"
        return None


def _table(title: str, rows: list[tuple[str, float, float]], base: str, note: str = "") -> str:
    ref = dict((r[0], r[1]) for r in rows)[base]
    out = [f"### {title}", "", note, "", "| implementation | time (s) | speed-up vs " + base + " | peak RSS growth (MiB) |",
           "|---|---:|---:|---:|"]
    for name, sec, mem in rows:
        out.append(f"| {name} | {sec:.3f} | {ref / sec:.1f}x | {mem:.0f} |")
    return "\n".join(x for x in out if x is not None) + "\n"


def _log_mel_case(n: int, seconds: float, sr: int, repeats: int) -> tuple[str, dict]:
    import librosa

    from roomtone.features import log_mel

    kw = dict(n_fft=1024, hop_length=512, n_mels=128)
    x = _signals(n, seconds, sr)
    xt = torch.from_numpy(x)
    rows = []
    for impl in ("fft", "conv"):
        layer = log_mel(sr=sr, top_db=80.0, stft_impl=impl, **kw)

        def ours(layer=layer):
            with torch.inference_mode():
                layer(xt)

        label = "roomtone log_mel (batched)" if impl == "fft" else "roomtone log_mel, stft_impl='conv' (export path)"
        rows.append((label, *_measure(ours, repeats)))
        if impl == "fft":
            rows.append(("roomtone log_mel (batched, 1 torch thread)", *_one_thread(ours, repeats)))

    def loop():
        with _one_blas_thread():
            for clip in x:
                librosa.power_to_db(librosa.feature.melspectrogram(y=clip, sr=sr, **kw), top_db=80.0)

    def batch():
        _per_example_db(librosa.feature.melspectrogram(y=x, sr=sr, **kw))

    rows.append(("librosa, per-clip loop", *_measure(loop, max(1, repeats - 1))))
    rows.append(("librosa, 2-D batch (+ per-example top_db)", *_measure(batch, max(1, repeats - 1))))
    fft_layer = log_mel(sr=sr, top_db=80.0, **kw)

    def ours_fft():
        with torch.inference_mode():
            fft_layer(xt)

    paired = {"default threads": _paired(ours_fft, loop, repeats)}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        paired["1 thread"] = _paired(ours_fft, loop, repeats)
    finally:
        torch.set_num_threads(before)
    nnf = _nnaudio()
    if nnf is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = nnf.MelSpectrogram(sr=sr, n_fft=1024, n_mels=128, hop_length=512, verbose=False)

        def peer():
            with torch.inference_mode():
                m = spec(xt)
                db = 10 * torch.log10(m.clamp(min=1e-10))
                torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - 80.0)

        rows.append((f"nnAudio {getattr(__import__('nnAudio'), '__version__', '')} MelSpectrogram + dB", *_measure(peer, repeats)))
    title = f"log-mel: {n} x {seconds:g} s @ {sr / 1000:g} kHz (n_fft 1024, hop 512, 128 mels, top_db 80)"
    ratios = {r[0]: r[1] for r in rows}
    ratios["paired"] = paired
    note = ("Paired runs (roomtone, then the librosa loop, back to back, {r} times; median of the per-pair ratios, "
            "so a burst of load on the shared machine hits both): {p}.").format(
        r=repeats, p="; ".join(f"{k} {v['wall']:.1f}x wall-clock" + (f", {v['cpu']:.1f}x CPU time" if k == "1 thread"
                                                                        else "") for k, v in paired.items()))
    return _table(title, rows, "librosa, per-clip loop") + "\n" + note + "\n", ratios


def _paired(ours, peer, repeats: int) -> dict:
    """Median over ``repeats`` back-to-back pairs of peer time / our time, in wall-clock and process CPU time
    (CPU time is comparable only when ours runs on one thread, like the peer)."""
    ours()
    peer()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        ours()
        t1, c1 = time.perf_counter(), time.process_time()
        peer()
        t2, c2 = time.perf_counter(), time.process_time()
        wall.append((t2 - t1) / (t1 - t0))
        cpu.append((c2 - c1) / max(c1 - c0, 1e-9))
    return {"wall": float(np.median(wall)), "cpu": float(np.median(cpu))}


def _mfcc_case(n: int, repeats: int) -> str:
    import librosa

    from roomtone.features import MFCC

    sr = 22050
    x = _signals(n, 1.0, sr, seed=1)
    xt = torch.from_numpy(x)
    layer = MFCC(sr, 20, 2048, 512, n_mels=128)

    def ours():
        with torch.inference_mode():
            layer(xt)

    def loop():
        with _one_blas_thread():
            for clip in x:
                librosa.feature.mfcc(y=clip, sr=sr, n_mfcc=20)

    def batch():
        mel = librosa.feature.melspectrogram(y=x, sr=sr)
        import scipy.fft

        scipy.fft.dct(_per_example_db(mel), axis=-2, norm="ortho")[..., :20, :]

    rows = [("roomtone MFCC (batched)", *_measure(ours, repeats)),
            ("librosa.feature.mfcc, per-clip loop", *_measure(loop, max(1, repeats - 1))),
            ("librosa, 2-D batch (+ per-example top_db)", *_measure(batch, max(1, repeats - 1)))]
    return _table(f"MFCC: {n} x 1 s @ 22.05 kHz (20 coefficients, n_fft 2048, hop 512, 128 mels)", rows,
                  "librosa.feature.mfcc, per-clip loop")


def _cqt_case(n: int, seconds: float, repeats: int) -> tuple[str, dict]:
    import librosa

    from roomtone.features import CQT

    sr = 22050
    x = _signals(n, seconds, sr, seed=2)
    xt = torch.from_numpy(x)
    layer = CQT(sr, 512, None, 84, 12)

    def ours():
        with torch.inference_mode():
            layer(xt)

    def batch():
        np.abs(librosa.cqt(x, sr=sr, hop_length=512, n_bins=84))

    rows = [("roomtone CQT (batched)", *_measure(ours, repeats)),
            ("roomtone CQT (batched, 1 torch thread)", *_one_thread(ours, repeats)),
            ("librosa.cqt, 2-D batch", *_measure(batch, max(1, repeats - 1)))]
    nnf = _nnaudio()
    if nnf is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cqt = nnf.CQT(sr=sr, hop_length=512, fmin=32.70319566257483, n_bins=84, bins_per_octave=12,
                          verbose=False)

        def peer():
            with torch.inference_mode():
                cqt(xt)

        rows.append(("nnAudio CQT (CQT1992v2, full-rate kernels)", *_measure(peer, repeats)))
    ratios = {r[0]: r[1] for r in rows}
    return _table(f"CQT: {n} x {seconds:g} s @ 22.05 kHz (hop 512, 84 bins from C1, 12 per octave)", rows,
                  "librosa.cqt, 2-D batch"), ratios


def run(*, quick: bool) -> str:
    threads = torch.get_num_threads()
    repeats = 2 if quick else 7
    short, short_r = _log_mel_case(32 if quick else 256, 1.0, 22050, repeats)
    long_, long_r = _log_mel_case(8 if quick else 64, 10.0, 44100, repeats)
    mfcc = _mfcc_case(32 if quick else 256, repeats)
    cqt, cqt_r = _cqt_case(8 if quick else 32, 5.0, repeats)

    def ratio(r, a, b):
        return r[b] / r[a]

    c_ratio = ratio(cqt_r, "roomtone CQT (batched)", "librosa.cqt, 2-D batch")
    c1 = ratio(cqt_r, "roomtone CQT (batched, 1 torch thread)", "librosa.cqt, 2-D batch")
    s_ratio, s1 = short_r["paired"]["default threads"]["wall"], short_r["paired"]["1 thread"]["wall"]
    l_ratio, l1 = long_r["paired"]["default threads"]["wall"], long_r["paired"]["1 thread"]["wall"]

    def met(v, bar):
        return "yes" if v >= bar else "NO"

    summary = [
        "## Feature layers (`benchmarks/bench_features.py`)",
        "",
        f"CPU, float32 input, inference mode; roomtone measured with torch's default {threads} threads and with 1",
        "thread (librosa runs single-threaded; its per-clip loop runs with NumPy's BLAS on one thread, whose idle",
        "threads would otherwise spin on the second core and slow roomtone's next run). The machine is shared and",
        "its speed changes from minute to minute, so the log-mel targets use paired runs (roomtone and the librosa",
        "loop back to back, median ratio; see under each table). Targets from the process-stage issue:",
        "",
        f"| target | measured, {threads} threads | met | measured, 1 thread | met |",
        "|---|---:|:---:|---:|:---:|",
        f"| log-mel on 1 s clips >= 10x librosa per-clip loop | {s_ratio:.1f}x | {met(s_ratio, 10)} | {s1:.1f}x | {met(s1, 10)} |",
        f"| log-mel on 10 s clips >= 2x librosa per-clip loop | {l_ratio:.1f}x | {met(l_ratio, 2)} | {l1:.1f}x | {met(l1, 2)} |",
        f"| CQT >= librosa 2-D batch | {c_ratio:.1f}x | {met(c_ratio, 1)} | {c1:.1f}x | {met(c1, 1)} |",
        "",
        "The 2-D librosa batch clamps `top_db` per example here (librosa's own `power_to_db` on a batch",
        "would clamp against the batch maximum). `stft_impl='conv'` is the path used while exporting",
        "to ONNX (fixed DFT kernel as a strided conv1d); eager PyTorch uses `torch.stft` (`stft_impl='auto'`).",
        "",
    ]
    return "\n".join(summary) + "\n" + short + "\n" + long_ + "\n" + mfcc + "\n" + cqt
