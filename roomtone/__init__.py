"""roomtone: deep learning with audio that still works in a noisy, reverberant room.

Stages: ``roomtone.prepare`` (data that looks like the real world), ``roomtone.features``
(log-mel and friends as torch layers), ``roomtone.models`` (VGG baseline, pretrained backbones),
``roomtone.train`` and ``roomtone.expect`` (feasibility before training, robustness after).
"""

from roomtone.errors import AudioError, ParameterError, RoomtoneError

__version__ = "0.1.0"
__all__ = ["AudioError", "ParameterError", "RoomtoneError", "__version__"]
