"""Virtual try-on app: MV-VTON (diffusion with joint garment attention and front/back view
selection) on VITON-HD, DressCode and MVG layouts. See :mod:`tessera.apps.tryon.api`."""

from tessera.apps.tryon.api import TASK, TryOnPredictor, load, save_weights

__all__ = ["TASK", "TryOnPredictor", "load", "save_weights"]
