"""One FFT pair for a room followed by a microphone: ``Compose`` fuses ``Reverberate`` + ``SimulateMicrophone``.

Both start with a linear, time-invariant filter: the room's RIR and the microphone's response. Applied
one after the other they cost two real FFT pairs per clip; multiplied into one spectrum they cost one,
about 40 % of such a chain's time. The microphone's non-linear rest (gain, self-noise, clipping, bit
depth, codec) then runs on the result as usual.

The result equals the sequential one except within the microphone filter's ringing time (20 ms)
of the clip's start and end: fused, the microphone filters the whole reverberant sound (the room's
pre-delay before the direct path and its tail after the clip) and the clip is then cut to length; one
after the other, the room's output is cut first and the filter rings into silence at both ends. (The
fused version is the physical one: a microphone hears the room's whole sound.) On real RIRs and the
presets the difference is below -45 dB of the signal's energy, about -68 dB of its RMS beyond 20 ms
from the ends. Replay of recorded parameters goes through the same path, so it reproduces the output
exactly. ``Compose(fuse=False)`` keeps the strictly sequential order.
"""

from __future__ import annotations

import torch

from roomtone.prepare.microphones import response_padding
from roomtone.prepare.rooms import _fft_size, convolve_spectrum
from roomtone.prepare.transforms.reverberate import Reverberate
from roomtone.prepare.transforms.simulate_microphone import SimulateMicrophone


def fusable(first, second) -> bool:
    """Whether ``second`` directly after ``first`` can share one FFT pair (a room, then a microphone)."""
    return isinstance(first, Reverberate) and isinstance(second, SimulateMicrophone) and first.sr == second.sr


def _applied(p: dict) -> bool:
    return bool(p.get("applied", True))


def room_then_mic(room: Reverberate, mic: SimulateMicrophone, x: torch.Tensor, room_params: list[dict],
                  mic_params: list[dict], lengths: torch.Tensor | None) -> torch.Tensor | None:
    """``mic(room(x))`` with both linear filters in one spectral product, for recorded per-example params.

    Returns None when these params cannot be fused (a wet/dry mix below 1, a bank too large to keep its
    spectra, an FFT too short for the microphone's padding); the caller then runs the two in sequence.
    """
    b, t = x.shape
    if any(_applied(p) and float(p["wet"]) != 1.0 for p in room_params):
        return None
    data, peaks = room.bank.on(x.device)
    n = _fft_size(t + data.shape[1] - 1)
    if n < t + response_padding(mic.sr):
        return None
    spec = room.bank.spectra(n, device=x.device, normalize=room.normalize)
    if spec is None:
        return None
    rooms = [room.bank.index_of(p["room"]) if _applied(p) else -1 for p in room_params]
    mics = [p["mic"] if _applied(p) else None for p in mic_params]
    # one spectrum per distinct (room, mic) pair of the batch: room spectrum x mic magnitude
    pairs = list(dict.fromkeys(zip(rooms, mics, strict=True)))
    flat = torch.ones(n // 2 + 1, dtype=torch.complex64, device=x.device)
    rows = []
    for k, m in pairs:
        h = spec[k] if k >= 0 else flat
        if m is not None:
            h = h * torch.as_tensor(mic.preset(m).magnitude(sr=mic.sr, n_fft=n), dtype=torch.float32).to(x.device)
        rows.append(h)
    index = [pairs.index(pair) if pair != (-1, None) else -1 for pair in zip(rooms, mics, strict=True)]
    shift = torch.tensor([int(peaks[k]) if k >= 0 else 0 for k in rooms], device=x.device)
    y = convolve_spectrum(x, torch.stack(rows), shift, n=n, index=index).to(x.dtype)
    untouched = [i for i in range(b) if index[i] < 0]
    if untouched:  # neither applied: the input itself, not its FFT round trip
        y = y.clone()
        y[untouched] = x[untouched]
    if lengths is not None:
        from roomtone.prepare.noise import valid_mask

        y = y * valid_mask(lengths, batch=b, time=t, device=x.device)
    return mic._run(y, mic_params, lengths, response=False)
