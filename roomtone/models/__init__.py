"""roomtone.models: registry, VGG baseline, efficient EffNet and TCNet families, pooling heads, receptive field.

    from roomtone.models import create_model, list_models, receptive_field
    model = create_model("vgg", num_classes=10, sr=8000, n_mels=64)
    logits = model(waveform)            # (batch, time) -> (batch, 10)
"""

from roomtone.models.effnet import EffNet
from roomtone.models.heads import HEADS, create_head
from roomtone.models.receptive_field import ReceptiveField, check_receptive_field, design, receptive_field
from roomtone.models.registry import create_model, is_model, list_models, register_model
from roomtone.models.tcnet import TCNet
from roomtone.models.vgg import VGG

__all__ = ["HEADS", "VGG", "EffNet", "TCNet", "ReceptiveField", "check_receptive_field", "create_head", "create_model",
           "design", "is_model", "list_models", "receptive_field", "register_model"]
