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
========  ==========================================================================

``split`` picks the bank split: ``train`` for training, ``test`` for evaluation (simulated rooms
use a different seed per split, so test rooms are never train rooms); ``valid`` uses the train banks
(noise and RIR collections are split train/test only). The simulated bank is small
(8 rooms) and cached on disk, so it builds in a few seconds once and loads instantly afterwards.
"""

from __future__ import annotations

from roomtone.errors import ParameterError

CONDITIONS = ("clean", "noise", "room", "mic", "all")


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
    """The transform for condition ``name`` in ``{"clean", "noise", "room", "mic", "all"}``.

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

    if name not in CONDITIONS:
        raise ParameterError(f"condition {name!r} is not known; choose one of {list(CONDITIONS)}")
    if not isinstance(sr, int) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    if split not in ("train", "valid", "test"):
        raise ParameterError(f"split={split!r} must be 'train', 'valid' or 'test'")
    split = "train" if split == "valid" else split
    lo, hi = (float(snr_db), float(snr_db)) if isinstance(snr_db, (int, float)) else map(float, snr_db)
    if name == "clean":
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

    if name == "noise":
        return noise_t(p)
    if name == "room":
        return room_t(p)
    if name == "mic":
        return mic_t(p)
    return Compose([room_t(1.0), noise_t(1.0), mic_t(1.0)], p=p, seed=seed)
