"""The embedded default dataset: labeled, dry and clean sound events generated in code from a seed.

``synthetic_events(out_dir, seed=0)`` writes ``out_dir/<label>/<label>_<session>_<index>.wav`` (mono,
16-bit PCM, all ``clip_seconds`` long) and ``out_dir/manifest.csv`` (columns ``path,label,group,split``
plus the extra columns ``onset``, ``event_seconds``, ``active_seconds``, ``n_events``; ``split`` is left
empty so that ``roomtone prepare`` assigns grouped splits). The same arguments give the same bytes.

The nine classes are built so that a classical baseline on summary statistics (mean/std of MFCCs over the
clip) cannot solve the task, while a CNN that sees the time structure can:

=============  ===========================================================  ==================
label          event                                                        event length
=============  ===========================================================  ==================
chirp_up       exponential sweep up (x2 .. x3.5 in frequency)               0.25 - 0.6 s
chirp_down     the same sweep played downwards (same spectrum on average)   0.25 - 0.6 s
beeps_2        two equal beeps (60 - 120 ms each)                           0.2 - 0.4 s
beeps_3        three equal beeps (same beeps, one more)                     0.3 - 0.66 s
clicks_slow    click train at 5 - 8 clicks/s                                0.6 - 0.95 s
clicks_fast    click train at 12 - 20 clicks/s (about as many clicks)       0.25 - 0.45 s
siren          slow sinusoidal frequency modulation                         0.6 - 0.95 s
hum            low harmonic tone (mains-like), gently amplitude-modulated   0.7 - 0.95 s
knock          1 - 3 damped low resonances with a noisy transient           0.05 - 0.6 s
=============  ===========================================================  ==================

Each event is placed at a random time in the clip, at a random level. The ``group`` column is a
"recording session": every session has its own pitch offset, harmonic timbre, low-pass colour and level,
so a grouped split tests generalisation to an unseen session, like a new speaker or a new microphone.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roomtone.errors import DataError, ParameterError
from roomtone.files import atomic_write_json

CLASSES = (
    "beeps_2",
    "beeps_3",
    "chirp_down",
    "chirp_up",
    "clicks_fast",
    "clicks_slow",
    "hum",
    "knock",
    "siren",
)
_VERSION = 1  # bump when the generated audio changes, so a cached folder is not reused by mistake
_SESSION_STREAM = 1_000_003  # separates the session parameter stream from the per-example streams


@dataclass(frozen=True)
class _Session:
    """Recording-session parameters shared by every example of one group."""

    pitch: float  # frequency multiplier
    h2: float  # weight of the 2nd harmonic of tonal events
    h3: float  # weight of the 3rd harmonic
    cutoff_hz: float  # low-pass "microphone" colour
    gain_db: float  # level offset


@dataclass(frozen=True)
class _Event:
    """A dry event (before placement) and the facts about it written into the manifest."""

    audio: np.ndarray  # (event_samples,) float64, peak 1
    n_events: int  # beeps, clicks or knocks in it (1 for a sweep/siren/hum)
    active_seconds: float  # total sounding time (sum of beep/click/knock durations)


def _session(seed: int, index: int, sr: int) -> _Session:
    rng = np.random.default_rng([seed, _SESSION_STREAM, index])
    return _Session(
        pitch=float(rng.uniform(0.85, 1.18)),
        h2=float(rng.uniform(0.0, 0.5)),
        h3=float(rng.uniform(0.0, 0.3)),
        cutoff_hz=float(min(rng.uniform(2500.0, 7000.0), 0.45 * sr)),
        gain_db=float(rng.uniform(-6.0, 6.0)),
    )


def _ramp(n: int, sr: int, ms: float = 5.0) -> np.ndarray:
    """Raised-cosine fade in and out of ``ms`` milliseconds: shape ``(n,)``."""
    env = np.ones(n)
    k = max(1, min(n // 2, int(sr * ms / 1000)))
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
    env[:k] = fade
    env[n - k :] = fade[::-1]
    return env


def _tone(freq: np.ndarray, sr: int, s: _Session, phase0: float) -> np.ndarray:
    """Harmonic tone following the instantaneous frequency track ``freq`` (Hz, shape ``(n,)``)."""
    phase = phase0 + 2 * np.pi * np.cumsum(freq) / sr
    out = np.sin(phase)
    for k, w in ((2, s.h2), (3, s.h3)):
        if w > 0:
            out = out + w * np.sin(k * phase) * (k * freq < 0.45 * sr)
    return out


def _chirp(rng, sr, s, *, up: bool) -> _Event:
    dur = rng.uniform(0.25, 0.6)
    f0 = rng.uniform(300.0, 700.0) * s.pitch
    ratio = rng.uniform(2.0, 3.5)
    n = int(dur * sr)
    frac = np.arange(n) / n
    freq = f0 * ratio ** (frac if up else 1.0 - frac)
    return _Event(_tone(freq, sr, s, rng.uniform(0, 2 * np.pi)) * _ramp(n, sr, 10.0), 1, n / sr)


def _beeps(rng, sr, s, *, count: int) -> _Event:
    beep = int(rng.uniform(0.06, 0.12) * sr)
    gap = int(rng.uniform(0.06, 0.15) * sr)
    freq = np.full(beep, rng.uniform(700.0, 1400.0) * s.pitch)
    one = _tone(freq, sr, s, 0.0) * _ramp(beep, sr)
    out = np.zeros(count * beep + (count - 1) * gap)
    for i in range(count):
        out[i * (beep + gap) : i * (beep + gap) + beep] = one
    return _Event(out, count, count * beep / sr)


def _clicks(rng, sr, s, *, rate: tuple[float, float], dur: tuple[float, float]) -> _Event:
    period = 1.0 / rng.uniform(*rate)
    n_clicks = max(2, int(round(rng.uniform(*dur) / period)))
    click_n = int(0.004 * sr)
    decay = np.exp(-np.arange(click_n) / (0.0008 * sr))
    out = np.zeros(int((n_clicks - 1) * period * sr) + click_n)
    for i in range(n_clicks):
        jitter = rng.uniform(-0.04, 0.04) * period  # a little timing variation, rate stays clear
        start = min(len(out) - click_n, max(0, int((i * period + jitter) * sr)))
        out[start : start + click_n] += rng.standard_normal(click_n) * decay
    return _Event(out, n_clicks, n_clicks * click_n / sr)


def _siren(rng, sr, s) -> _Event:
    n = int(rng.uniform(0.6, 0.95) * sr)
    t = np.arange(n) / sr
    fc = rng.uniform(600.0, 1000.0) * s.pitch
    depth = rng.uniform(150.0, 300.0) * s.pitch
    rate = rng.uniform(1.5, 4.0)
    freq = fc + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    return _Event(_tone(freq, sr, s, 0.0) * _ramp(n, sr, 20.0), 1, n / sr)


def _hum(rng, sr, s) -> _Event:
    n = int(rng.uniform(0.7, 0.95) * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(90.0, 200.0) * s.pitch
    out = np.zeros(n)
    for k in range(1, 11):
        if k * f0 < 0.45 * sr:
            out += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    am = 1.0 + 0.2 * np.sin(2 * np.pi * rng.uniform(2.0, 6.0) * t)
    return _Event(out * am * _ramp(n, sr, 30.0), 1, n / sr)


def _knock(rng, sr, s) -> _Event:
    count = int(rng.integers(1, 4))
    spacing = int(rng.uniform(0.1, 0.25) * sr)
    f = rng.uniform(200.0, 500.0) * s.pitch
    tau = rng.uniform(0.015, 0.04)
    k_n = int(5 * tau * sr)
    t = np.arange(k_n) / sr
    out = np.zeros((count - 1) * spacing + k_n)
    for i in range(count):
        body = np.sin(2 * np.pi * f * t) * np.exp(-t / tau)
        transient = 0.5 * rng.standard_normal(k_n) * np.exp(-t / 0.002)
        out[i * spacing : i * spacing + k_n] += (body + transient) * rng.uniform(0.7, 1.0)
    return _Event(out, count, count * min(k_n / sr, 3 * tau))


_GENERATORS: dict[str, Callable[..., _Event]] = {
    "beeps_2": lambda rng, sr, s: _beeps(rng, sr, s, count=2),
    "beeps_3": lambda rng, sr, s: _beeps(rng, sr, s, count=3),
    "chirp_down": lambda rng, sr, s: _chirp(rng, sr, s, up=False),
    "chirp_up": lambda rng, sr, s: _chirp(rng, sr, s, up=True),
    "clicks_fast": lambda rng, sr, s: _clicks(rng, sr, s, rate=(12.0, 20.0), dur=(0.25, 0.45)),
    "clicks_slow": lambda rng, sr, s: _clicks(rng, sr, s, rate=(5.0, 8.0), dur=(0.6, 0.95)),
    "hum": _hum,
    "knock": _knock,
    "siren": _siren,
}


def _lowpass(x: np.ndarray, *, sr: int, cutoff_hz: float) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(2, cutoff_hz, fs=sr, output="sos"), x)


def render_example(label: str, *, seed: int, index: int, session: int, sr: int, clip_seconds: float):
    """One clip of class ``label``: returns ``(audio, facts)``.

    ``audio`` is float32 of shape ``(round(clip_seconds * sr),)`` with peak <= 0.9; ``facts`` is a dict
    with ``onset`` and ``event_seconds`` (placement of the event in the clip, seconds), ``active_seconds``
    (sounding time) and ``n_events``. Deterministic in all arguments.
    """
    if label not in _GENERATORS:
        raise ParameterError(f"label={label!r} is not a synthetic class; allowed: {list(CLASSES)}")
    s = _session(seed, session, sr)
    rng = np.random.default_rng([seed, CLASSES.index(label), index])
    ev = _GENERATORS[label](rng, sr, s)
    n = int(round(clip_seconds * sr))
    audio = _lowpass(ev.audio, sr=sr, cutoff_hz=s.cutoff_hz)[:n]
    audio = audio / max(float(np.max(np.abs(audio))), 1e-9)
    level_db = min(rng.uniform(-26.0, -6.0) + s.gain_db, -1.0)
    onset = int(rng.integers(0, n - len(audio) + 1))
    clip = np.zeros(n)
    clip[onset : onset + len(audio)] = audio * 10 ** (level_db / 20)
    facts = {
        "onset": onset / sr,
        "event_seconds": len(audio) / sr,
        "active_seconds": min(ev.active_seconds, len(audio) / sr),
        "n_events": ev.n_events,
    }
    return clip.astype(np.float32), facts


def _settings(seed, n_per_class, n_sessions, sr, clip_seconds) -> dict:
    return {
        "generator": "roomtone.prepare.datasets.synthetic_events",
        "version": _VERSION,
        "seed": seed,
        "n_per_class": n_per_class,
        "n_sessions": n_sessions,
        "sr": sr,
        "clip_seconds": clip_seconds,
        "labels": list(CLASSES),
    }


def _check(seed, n_per_class, n_sessions, sr, clip_seconds) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a non-negative integer")
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ParameterError(f"n_per_class={n_per_class!r} must be a positive integer")
    if not isinstance(n_sessions, (int, np.integer)) or not 1 <= n_sessions <= n_per_class:
        raise ParameterError(f"n_sessions={n_sessions!r} must be an integer in [1, n_per_class={n_per_class}]")
    if not isinstance(sr, (int, np.integer)) or sr < 8000:
        raise ParameterError(f"sr={sr!r} must be an integer >= 8000 (Hz)")
    if not 1.0 <= float(clip_seconds) <= 30.0:
        raise ParameterError(f"clip_seconds={clip_seconds!r} must be in [1, 30] seconds (the longest event is 0.95 s)")


def _remove_previous(out_dir: Path) -> None:
    """Delete what an earlier call wrote (its class folders and files), nothing else."""
    for label in CLASSES:
        folder = out_dir / label
        if folder.is_dir():
            shutil.rmtree(folder)
    for name in ("manifest.csv", "synthetic.json"):
        (out_dir / name).unlink(missing_ok=True)


def synthetic_events(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_per_class: int = 64,
    n_sessions: int = 8,
    sr: int = 16000,
    clip_seconds: float = 1.0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate the embedded demo dataset into ``out_dir`` and return the path of its ``manifest.csv``.

    Args:
        out_dir: folder to write; created if needed.
        seed: every sample drawn comes from ``numpy.random.default_rng([seed, ...])``; same seed, same bytes.
        n_per_class: clips per class (``len(CLASSES)`` classes, 9).
        n_sessions: recording sessions (the ``group`` column); clip ``i`` of a class is in session
            ``i % n_sessions``, so each session holds every class.
        sr: sample rate in Hz.
        clip_seconds: length of every clip in seconds (events last 0.05 - 0.95 s, placed at random).
        overwrite: replace a folder written by an earlier call with other settings. Without it, a folder
            already holding this exact dataset (same settings in ``synthetic.json``) is reused as is,
            and any other non-empty folder is refused.
        progress: optional callback ``progress(done, total)`` after each file.

    Raises:
        ParameterError: a bad argument.
        DataError: ``out_dir`` holds something else and ``overwrite`` is False.
    """
    from roomtone.audio import save
    from roomtone.prepare.manifest import ManifestRow, write_manifest

    _check(seed, n_per_class, n_sessions, sr, clip_seconds)
    out_dir = Path(out_dir)
    settings = _settings(int(seed), int(n_per_class), int(n_sessions), int(sr), float(clip_seconds))
    stamp = out_dir / "synthetic.json"
    manifest = out_dir / "manifest.csv"
    if out_dir.exists() and any(out_dir.iterdir()):
        previous = json.loads(stamp.read_text()) if stamp.exists() else None
        if previous == settings and manifest.exists() and not overwrite:
            return manifest
        if not overwrite:
            what = "a synthetic dataset with other settings" if previous else "other files"
            raise DataError(f"{out_dir}: holds {what}; pass overwrite=True or choose an empty folder")
        if previous is None:
            raise DataError(f"{out_dir}: is not a folder written by synthetic_events; refusing to delete it")
        _remove_previous(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    total = len(CLASSES) * n_per_class
    for c, label in enumerate(CLASSES):
        for i in range(n_per_class):
            session = i % n_sessions
            audio, facts = render_example(label, seed=seed, index=i, session=session, sr=sr, clip_seconds=clip_seconds)
            rel = Path(label) / f"{label}_s{session:02d}_{i:04d}.wav"
            save(out_dir / rel, audio, sr, subtype="PCM_16")
            rows.append(
                ManifestRow(
                    path=rel.as_posix(),
                    label=label,
                    group=f"session{session:02d}",
                    extra={
                        "onset": f"{facts['onset']:.4f}",
                        "event_seconds": f"{facts['event_seconds']:.4f}",
                        "active_seconds": f"{facts['active_seconds']:.4f}",
                        "n_events": str(facts["n_events"]),
                    },
                )
            )
            if progress is not None:
                progress(c * n_per_class + i + 1, total)
    path = write_manifest(manifest, rows)
    atomic_write_json(stamp, settings)
    return path
