"""Segmentation data: mmseg / VOC / ISIC semantic layouts, VizWiz-grounding and RefCOCO
text-conditioned layouts, aligned augmentations and the synthetic shapes world."""

from tessera.datamodules.segmentation.datamodule import (
    GroundingDataModule,
    SegmentationDataModule,
    SemanticDataModule,
)
from tessera.datamodules.segmentation.io import read_image, read_label, write_label

__all__ = [
    "GroundingDataModule",
    "SegmentationDataModule",
    "SemanticDataModule",
    "read_image",
    "read_label",
    "write_label",
]
