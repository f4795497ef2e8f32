"""Segmentation app: semantic/medical (axial + polarized attention) and text-conditioned
(Sentence Attention Blocks) segmentation. ``load(name_or_path)`` returns a predictor."""

from tessera.apps.segmentation.api import SegmentationPredictor, SegmentationResult, export, load

__all__ = ["SegmentationPredictor", "SegmentationResult", "export", "load"]
