"""Speech separation app: MossFormer (and a ConvTasNet baseline) on LibriMix / WSJ0-2mix data.

Python API (:mod:`.api`)::

    from tessera.apps.separation import load
    separator = load("separation-mossformer-tiny")      # registry name, file or official dir
    result = separator("mixture.wav")                     # result.sources: (K, T) numpy
"""

from tessera.apps.separation.api import (
    TASK,
    Separation,
    Separator,
    SeparatorWeights,
    load,
    load_weights,
    read_separator_weights,
    save_weights,
)

__all__ = [
    "Separation", "Separator", "SeparatorWeights", "TASK", "load", "load_weights",
    "read_separator_weights", "save_weights",
]  # fmt: skip
