"""Batch-inference outputs.

Semantic: ``pred/<id>.png`` palette index PNG at the image's original size (mmseg
``pred_out_dir``), or a 0/255 PNG for binary datasets; optional ``vis/<id>.png`` overlay.
Grounding: ``pred/<id>.png`` 0/255 mask at the image's size, optional ``vis/<id>.png``.
With labels the summary reports the dataset metrics, the same numbers as ``evaluate``
(``miou``/``mdice`` from areas summed over the dataset; GRES ``giou``/``ciou``/``prec_at_k``/
``n_acc``/``t_acc``), all at the original resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.datamodules.segmentation.io import overlay, read_image, write_image, write_label


class SegmentationWriter(ItemPredictionWriter):
    """Writes masks (and overlays) atomically; resumable; per rank under DDP.

    Args:
        output_dir: output folder.
        overwrite: re-predict items whose outputs exist.
        overlays: also write ``vis/<id>.png`` colour overlays.
        opacity: overlay opacity.
    """

    def __init__(
        self, output_dir: str, overwrite: bool = False, overlays: bool = False, opacity=0.5
    ):
        super().__init__(output_dir, overwrite)
        self.overlays, self.opacity = overlays, opacity

    def output_paths(self, item_id: str) -> list[Path]:
        paths = [self.output_dir / "pred" / f"{item_id}.png"]
        if self.overlays:
            paths.append(self.output_dir / "vis" / f"{item_id}.png")
        return paths

    def write_item(self, item: dict) -> None:
        pred = np.asarray(item["pred"])
        binary = pred.dtype == bool
        paths = self.output_paths(item["item_id"])
        write_label(paths[0], pred.astype(np.int64), binary=binary)
        if self.overlays:
            image = read_image(item["path"])
            write_image(paths[1], overlay(image, pred.astype(np.int64), self.opacity))
        if "areas" in item:
            a = item["areas"]
            metrics = {f"{k}_{c}": v for k in "iupl" for c, v in enumerate(a[k])}
            self.item_metrics[item["item_id"]] = metrics
        if "iou" in item:
            self.item_metrics[item["item_id"]] = dict(item["iou"])

    def merge(self, rank_summaries: list[dict]) -> dict:
        """Turn averaged per-item areas into dataset-level metrics (ratios of sums)."""
        summary = super().merge(rank_summaries)
        m = summary["metrics"]
        if "u_0" in m:
            k = len([key for key in m if key.startswith("u_")])
            i = np.array([m[f"i_{c}"] for c in range(k)])
            u = np.array([m[f"u_{c}"] for c in range(k)])
            pl = np.array([m[f"p_{c}"] + m[f"l_{c}"] for c in range(k)])
            with np.errstate(invalid="ignore", divide="ignore"):
                summary["metrics"] = {
                    "miou": float(np.nanmean(i / u)),
                    "mdice": float(np.nanmean(2 * i / pl)),
                }
        elif "iou" in m:
            per_item = {k: v for r in rank_summaries for k, v in r["item_metrics"].items()}
            rows = list(per_item.values())
            targets = [r for r in rows if r["target"]]
            empty = [r for r in rows if not r["target"]]
            union = sum(r["u"] for r in rows)
            metrics = {
                "giou": float(np.mean([r["iou"] for r in rows])),
                "ciou": sum(r["i"] for r in rows) / union if union > 0 else 1.0,
            }
            for k in (0.5, 0.6, 0.7, 0.8, 0.9):
                hits = [r["iou"] >= k for r in targets]
                metrics[f"prec_at_{k}"] = float(np.mean(hits)) if hits else 0.0
            if empty:
                metrics["n_acc"] = float(np.mean([not r["found"] for r in empty]))
                if targets:
                    metrics["t_acc"] = float(np.mean([bool(r["found"]) for r in targets]))
            summary["metrics"] = metrics
        return summary
