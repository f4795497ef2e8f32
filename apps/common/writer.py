"""Base prediction writer: atomic per-item outputs, resumable, per rank under DDP.

Contract with the LightningModule: ``predict_step`` returns a list with one dict per item,
each holding ``"item_id"`` plus whatever :meth:`ItemPredictionWriter.write_item` needs; the
batch may carry ``"skipped"`` (see :func:`tessera.datamodules.common.collate_skipping`).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from tessera.datamodules.common.io import atomic_write_text


class ItemPredictionWriter(BasePredictionWriter, ABC):
    """Writes each item's outputs atomically and a JSON summary at the end.

    - Every output goes through a temp file + rename, so an interrupted run never leaves a
      half-written file.
    - Items whose outputs all exist are not predicted again (unless ``overwrite``): the
      writer installs a filter on the datamodule (:class:`PredictFilterMixin`).
    - Under DDP each rank writes its own items and ``summary-rank{R}.json``; rank 0 merges
      them into ``summary.json`` after a barrier. Items the distributed sampler repeats to
      even out shards are written twice with identical content and counted once.

    Subclasses implement :meth:`output_paths` and :meth:`write_item`, and may add
    per-item metrics (``self.item_metrics[item_id] = {...}``), averaged in the summary.

    Args:
        output_dir: folder for the outputs and the summary.
        overwrite: predict and write every item even if its outputs exist.
    """

    def __init__(self, output_dir: str, overwrite: bool = False):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.written: list[str] = []
        self.skipped: list[dict] = []
        self.item_metrics: dict[str, dict[str, float]] = {}
        self.existing = 0
        self._summarised = False

    @abstractmethod
    def output_paths(self, item_id: str) -> list[Path]:
        """The files that make ``item_id`` finished."""

    @abstractmethod
    def write_item(self, item: dict[str, Any]) -> None:
        """Write one item's outputs (use :func:`~tessera.datamodules.common.atomic_write`)."""

    def is_done(self, item_id: str) -> bool:
        return all(p.exists() for p in self.output_paths(item_id))

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "predict":
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.written, self.skipped, self.item_metrics, self.existing = [], [], {}, 0
        self._summarised = False
        datamodule = trainer.datamodule
        if not self.overwrite and hasattr(datamodule, "set_predict_filter"):

            def keep(item_id: str) -> bool:
                if self.is_done(item_id):
                    self.existing += 1
                    return False
                return True

            datamodule.set_predict_filter(keep)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if isinstance(batch, dict):
            self.skipped.extend(batch.get("skipped", []))
        for item in prediction or []:
            self.write_item(item)
            self.written.append(item["item_id"])

    def on_predict_end(self, trainer, pl_module) -> None:
        rank_summary = {
            "rank": trainer.global_rank,
            "written": sorted(set(self.written)),
            "existing": self.existing,
            "skipped": self.skipped,
            "item_metrics": self.item_metrics,
        }
        atomic_write_text(
            self.output_dir / f"summary-rank{trainer.global_rank}.json",
            json.dumps(rank_summary, indent=1),
        )
        trainer.strategy.barrier("tessera-prediction-summary")
        if trainer.is_global_zero:
            summary = self.merge(
                [
                    json.loads((self.output_dir / f"summary-rank{r}.json").read_text())
                    for r in range(trainer.world_size)
                ]
            )
            atomic_write_text(self.output_dir / "summary.json", json.dumps(summary, indent=1))
            print(json.dumps(summary), flush=True)
        self._summarised = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # When every item was already finished the dataloader is empty and Lightning skips
        # the predict loop, ``on_predict_end`` included: the summary must still say so.
        if stage == "predict" and not self._summarised:
            self.on_predict_end(trainer, pl_module)

    def merge(self, rank_summaries: list[dict]) -> dict:
        """Combine per-rank summaries; per-item metrics are averaged over unique items."""
        written = sorted({i for s in rank_summaries for i in s["written"]})
        skipped = {d["item_id"]: d for s in rank_summaries for d in s["skipped"]}
        per_item: dict[str, dict[str, float]] = {}
        for s in rank_summaries:
            per_item.update(s["item_metrics"])
        metrics = {}
        for key in sorted({k for m in per_item.values() for k in m}):
            values = [m[key] for m in per_item.values() if key in m and math.isfinite(m[key])]
            if values:
                metrics[key] = sum(values) / len(values)
        return {
            "output_dir": str(self.output_dir),
            "written": len(written),
            # rank 0 and others each see every finished item; report the count once
            "already_done": max(s["existing"] for s in rank_summaries),
            "skipped": sorted(skipped.values(), key=lambda d: d["item_id"]),
            "metrics": metrics,
        }
