"""Randomized transforms (audiomentations-style names): call ``t(audio, generator=g)``, read
``t.last_params``, reproduce with ``t.replay(audio, params)``. See :mod:`.base` for the protocol."""

from roomtone.prepare.transforms.add_babble import AddBabble
from roomtone.prepare.transforms.add_colored_noise import AddColoredNoise
from roomtone.prepare.transforms.add_noise import AddNoise
from roomtone.prepare.transforms.base import Transform
from roomtone.prepare.transforms.compose import Compose
from roomtone.prepare.transforms.gain import Gain
from roomtone.prepare.transforms.one_of import OneOf
from roomtone.prepare.transforms.reverberate import Reverberate
from roomtone.prepare.transforms.simulate_microphone import SimulateMicrophone

__all__ = ["AddBabble", "AddColoredNoise", "AddNoise", "Compose", "Gain", "OneOf", "Reverberate",
           "SimulateMicrophone", "Transform"]
