"""``TryOnDataModule``: VITON-HD / DressCode / MVG folders for fit, validate, test, predict.

Constructor arguments are the CLI options (``--data.<name>``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from tessera.datamodules.common import OnError, collate_skipping
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.tryon.dataset import TryOnDataset
from tessera.datamodules.tryon.layouts import (
    DRESSCODE_CATEGORIES,
    Layout,
    Pairs,
    detect_layout,
    list_records,
)


class TryOnDataModule(PredictFilterMixin, L.LightningDataModule):
    """Args:
    data: dataset folder (VITON-HD, DressCode or MVG layout).
    layout: ``auto`` (detected from the folders), ``vitonhd``, ``dresscode`` or ``mvg``.
    size: working size ``[H, W]`` (the model's resolution).
    pairs: ``paired`` (each person in its own garment; SSIM/LPIPS are defined) or
        ``unpaired`` (the pairs file's garments; FID/KID only) for validate/test/predict.
    train_split, val_split, test_split, predict_split: split folder names (VITON-HD and
        DressCode ship only ``train`` and ``test``).
    categories: DressCode categories to read.
    batch_size, eval_batch_size, num_workers: loader options.
    on_error: ``raise`` or ``skip`` unreadable items in fit/validate/test; prediction always
        skips them and lists them in its summary.
    """

    def __init__(
        self,
        data: str,
        layout: Layout = "auto",
        size: tuple[int, int] = (128, 96),
        pairs: Pairs = "paired",
        train_split: str = "train",
        val_split: str = "test",
        test_split: str = "test",
        predict_split: str = "test",
        categories: tuple[str, ...] = DRESSCODE_CATEGORIES,
        batch_size: int = 4,
        eval_batch_size: int = 4,
        num_workers: int = 0,
        on_error: OnError = "raise",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data = Path(data)
        self.layout = layout
        self.size = tuple(size)
        self.pairs = pairs
        self.splits = {
            "fit": train_split,
            "validate": val_split,
            "test": test_split,
            "predict": predict_split,
        }
        self.categories = tuple(categories)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.on_error = on_error
        self.datasets: dict[str, TryOnDataset] = {}

    def resolved_layout(self) -> str:
        return detect_layout(self.data) if self.layout == "auto" else self.layout

    def dataset(
        self,
        split: str,
        pairs: Pairs | None = None,
        side_view="front",
        on_error: OnError | None = None,
        counterfactuals: bool = True,
    ) -> TryOnDataset:
        records = list_records(self.data, split, self.layout, pairs or self.pairs, self.categories)
        if not records:
            raise ValueError(f"{self.data}: split {split!r} has no items")
        return TryOnDataset(
            records, self.size, side_view, on_error or self.on_error, counterfactuals
        )

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.datasets["train"] = self.dataset(
                self.splits["fit"], "paired", "skeleton", counterfactuals=False
            )
            self.datasets["val"] = self.dataset(self.splits["validate"], "paired")
        elif stage == "validate":
            self.datasets["val"] = self.dataset(self.splits["validate"])
        elif stage == "test":
            self.datasets["test"] = self.dataset(self.splits["test"])
        elif stage == "predict":
            self.datasets["predict"] = self.dataset(self.splits["predict"], on_error="skip")

    def _loader(self, name: str, batch_size: int, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_skipping(),
            drop_last=shuffle and len(self.datasets[name]) > batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        # the prediction writer's filter (finished items) is installed after ``setup``
        dataset = self.datasets["predict"]
        dataset.records = self.keep_for_predict(dataset.records, lambda r: r.item_id)
        return self._loader("predict", self.eval_batch_size)
