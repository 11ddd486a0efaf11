"""Named acoustic conditions: one call gives the transform used for training augmentation, for
robustness evaluation and for the demo.

========  ==========================================================================
name      transform
========  ==========================================================================
clean     identity (``Compose([])``)
noise     ``AddNoise`` from ``noise`` (folder/CSV), or ``AddColoredNoise`` when ``noise`` is None
room      ``Reverberate`` with ``rooms`` (folder/CSV, ``"simulated"``, or None = simulated)
mic       ``SimulateMicrophone(mic)``
all       ``Compose([room, noise, mic])`` (reverberation first, noise in the room, then the microphone)
a+b       any ``+``-joined parts among noise/room/mic, applied in the order of ``all``
          (``noise+room`` = reverberate, then add noise; ``room+mic`` = a room heard by a microphone)
========  ==========================================================================

``split`` picks the bank split: ``train`` for training, ``test`` for evaluation (simulated rooms
use a different seed per split, so test rooms are never train rooms); ``valid`` uses the train banks
(noise and RIR collections are split train/test only). The simulated bank is small
(8 rooms) and cached on disk, so it builds in a few seconds once and loads instantly afterwards.
"""

from __future__ import annotations

from roomtone.errors import ParameterError

CONDITIONS = ("clean", "noise", "room", "mic", "all")
PARTS = ("room", "noise", "mic")  # the order of "all" and of "+"-joined names


def condition_parts(name: str) -> list[str]:
    """The basic parts of a condition name in application order: ``"mic+room"`` -> ``["room", "mic"]``,
    ``"all"`` -> ``["room", "noise", "mic"]``, ``"clean"`` -> ``[]``. Unknown names: ParameterError."""
    name = str(name).strip().lower()
    if name == "clean":
        return []
    if name == "all":
        return list(PARTS)
    parts = [p.strip() for p in name.split("+")]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        what = f"unknown part(s) {bad}" if len(parts) > 1 else "not known"
        raise ParameterError(f"condition {name!r}: {what}; choose one of {list(CONDITIONS)} or join "
                             f"{list(PARTS)} with '+' (e.g. 'noise+room')")
    return sorted(set(parts), key=PARTS.index)


def make_condition(
    name: str,
    *,
    sr: int,
    noise=None,
    rooms=None,
    split: str = "train",
    snr_db: tuple[float, float] = (0.0, 20.0),
    mic="phone",
    p: float = 1.0,
    seed: int = 0,
):
    """The transform for condition ``name``: ``clean``, ``noise``, ``room``, ``mic``, ``all`` or a
    ``+``-joined combination such as ``noise+room`` (applied in the order room, noise, mic).

    Args:
        sr: sample rate of the audio it will see (Hz).
        noise: folder/CSV of noise recordings (``split`` rows), a ``NoiseBank``, or None (procedural colored noise).
        rooms: folder/CSV of RIRs, ``"simulated"``, a ``RoomBank``, or None (simulated shoebox bank).
        split: ``train`` / ``test`` bank split.
        snr_db: ``(min, max)`` SNR range in dB, or one number for a fixed SNR.
        mic: microphone preset name(s) for ``mic`` and ``all``.
        p: probability that an example is transformed.
        seed: seed of the transform's own generator (used when the call passes no ``generator``) and of
            the simulated rooms.

    Returns:
        A transform: ``out = t(audio, generator=g)``, ``t.last_params``, ``t.replay(audio, params)``.
    """
    from roomtone.prepare.transforms import (
        AddColoredNoise,
        AddNoise,
        Compose,
        Reverberate,
        SimulateMicrophone,
    )

    parts = condition_parts(name)
    if not isinstance(sr, int) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    if split not in ("train", "valid", "test"):
        raise ParameterError(f"split={split!r} must be 'train', 'valid' or 'test'")
    split = "train" if split == "valid" else split
    lo, hi = (float(snr_db), float(snr_db)) if isinstance(snr_db, (int, float)) else map(float, snr_db)
    if not parts:
        return Compose([], p=p, seed=seed)

    def noise_t(pp: float):
        if noise is None:
            return AddColoredNoise(min_snr_db=lo, max_snr_db=hi, p=pp, sr=sr, seed=seed)
        return AddNoise(noise, sr=sr, split=split, min_snr_db=lo, max_snr_db=hi, p=pp, seed=seed)

    def room_t(pp: float):
        bank_kw = {"seed": seed, "progress": False} if rooms is None or rooms == "simulated" else None
        return Reverberate("simulated" if rooms is None else rooms, sr=sr, split=split, p=pp, seed=seed,
                           bank_kw=bank_kw)

    def mic_t(pp: float):
        return SimulateMicrophone(mic, sr=sr, p=pp, seed=seed)

    make = {"room": room_t, "noise": noise_t, "mic": mic_t}
    if len(parts) == 1:
        return make[parts[0]](p)
    return Compose([make[part](1.0) for part in parts], p=p, seed=seed)
