"""SimulateMicrophone: pass the audio through a (randomly chosen) microphone preset."""

from __future__ import annotations

import torch

from roomtone.errors import ParameterError
from roomtone.prepare.colored import colored_noise
from roomtone.prepare.microphones import CODECS, MicPreset, codec_support, get_preset, simulate_microphone
from roomtone.prepare.transforms.base import Transform, check_range, integers, seeds, uniform


class SimulateMicrophone(Transform):
    """Microphone response, gain, self-noise, clipping, bit depth and codec of a preset.

    Args:
        mic: a preset name (``phone``, ``laptop``, ``headset``, ``far-field``, ``telephone``), a
            :class:`MicPreset`, or a list of them (one drawn per example).
        sr: the audio's sample rate.
        min_gain_db, max_gain_db: input gain drawn per example (drives the clipping).
        codec: True: the preset's codec round trip (CPU; presets ``voip`` has Opus); a name (``mp3``,
            ``vorbis``, ``opus``): that codec for every preset; False: none. When libsndfile lacks the
            codec, the example is processed without it and ``codec_skipped`` records the reason.

    Params per example: ``mic``, ``gain_db``, ``noise_seed`` (self-noise), ``codec`` (or ``codec_skipped``).
    """

    def __init__(self, mic="phone", *, sr: int, min_gain_db: float = 0.0, max_gain_db: float = 0.0,
                 p: float = 1.0, codec: bool | str = True, seed: int = 0):
        super().__init__(p=p, sr=sr, seed=seed)
        check_range("gain_db", min_gain_db, max_gain_db)
        mics = [mic] if isinstance(mic, (str, MicPreset)) else list(mic)
        self.presets = {get_preset(m).name: get_preset(m) for m in mics}
        self.names = list(self.presets)
        if isinstance(codec, str) and codec not in CODECS:
            raise ParameterError(f"codec={codec!r} must be True, False or one of {sorted(CODECS)}")
        self.min_gain_db, self.max_gain_db, self.codec = float(min_gain_db), float(max_gain_db), codec

    def draw_params(self, x, g):
        b = x.shape[0]
        which = integers(g, b, len(self.names))
        gains = uniform(g, b, self.min_gain_db, self.max_gain_db)
        sd = seeds(g, b)
        out = []
        for w, gdb, s in zip(which, gains, sd, strict=True):
            pr = self.presets[self.names[w]]
            prm = {"mic": pr.name, "gain_db": gdb, "noise_seed": s}
            codec = self.codec if isinstance(self.codec, str) else (pr.codec if self.codec else None)
            if codec is not None:
                ok, why = codec_support(codec)
                prm.update({"codec": codec} if ok else {"codec_skipped": f"{codec}: {why}"})
            out.append(prm)
        return out

    def preset(self, name: str) -> MicPreset:
        """The preset recorded as ``name`` in the params (one of this transform's, or a named preset)."""
        return self.presets[name] if name in self.presets else get_preset(name)

    def apply(self, x, params, lengths, *, response: bool = True):
        out = torch.empty_like(x)
        t = x.shape[1]
        for name in dict.fromkeys(p["mic"] for p in params):
            sel = [i for i, p in enumerate(params) if p["mic"] == name]
            pr = self.preset(name)
            noise = None
            if pr.self_noise_dbfs is not None:
                noise = torch.stack([colored_noise(length=t, seed=params[i]["noise_seed"]) for i in sel]).to(x.device)
            gdb = torch.tensor([params[i]["gain_db"] for i in sel], dtype=torch.float32, device=x.device)
            codecs = {params[i].get("codec") for i in sel}
            if len(codecs) > 1:
                raise ParameterError(f"examples of mic {name!r} have different codecs {codecs}; replay them separately")
            codec = codecs.pop() or False
            if len(sel) == x.shape[0]:  # one microphone for the whole batch: no gather/scatter
                out = simulate_microphone(x, sr=self.sr, mic=pr, gain_db=gdb, noise=noise, codec=codec,
                                          response=response)
                break
            ix = torch.tensor(sel, device=x.device)
            out[ix] = simulate_microphone(x[ix], sr=self.sr, mic=pr, gain_db=gdb, noise=noise, codec=codec,
                                          response=response)
        if lengths is not None:
            from roomtone.prepare.noise import valid_mask

            out = out * valid_mask(lengths, batch=x.shape[0], time=t, device=x.device)
        return out
