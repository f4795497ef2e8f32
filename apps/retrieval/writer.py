"""Prediction writer: per-video frame features into a searchable index folder.

``tessera retrieval predict`` over a split or a folder writes what ``index`` writes: one
safetensors file per video (atomic, skipped on re-run), then ``features.safetensors`` and
``manifest.json`` for search (see :mod:`tessera.apps.retrieval.index`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.apps.retrieval.index import VideoIndex


class FeatureWriter(ItemPredictionWriter):
    """Args:
    output_dir: index folder.
    overwrite: embed videos whose features exist.
    model_id: fingerprint recorded in the index (default: ``ckpt_path`` name or "predict").
    """

    def __init__(self, output_dir: str, overwrite: bool = False, model_id: str = "predict"):
        super().__init__(output_dir, overwrite)
        self.index = VideoIndex(output_dir, model_id)

    def output_paths(self, item_id: str) -> list[Path]:
        return [self.index.item_path(item_id)]

    def write_item(self, item: dict[str, Any]) -> None:
        self.index.add(item["item_id"], item["path"], item)

    def on_predict_end(self, trainer, pl_module) -> None:
        super().on_predict_end(trainer, pl_module)
        if trainer.is_global_zero:
            self.index.build()
