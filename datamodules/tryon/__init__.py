"""Try-on data: VITON-HD, DressCode and MVG layouts, agnostic/mask derivation from parse +
pose, and the paper-doll synthetic world."""

from tessera.datamodules.tryon.datamodule import TryOnDataModule
from tessera.datamodules.tryon.dataset import TryOnDataset, load_record
from tessera.datamodules.tryon.io import TryOnDataWarning
from tessera.datamodules.tryon.layouts import TryOnRecord, detect_layout, list_records

__all__ = [
    "TryOnDataModule",
    "TryOnDataWarning",
    "TryOnDataset",
    "TryOnRecord",
    "detect_layout",
    "list_records",
    "load_record",
]
