"""A minimal task in the app shape (datamodule, module, writer) for testing apps/common.

Items are ``item-XX`` with x = XX / 10 and target 2x; item ids listed in ``CORRUPT`` fail
to read with a :class:`DataError`, as a corrupt file would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tessera.apps.common.writer import ItemPredictionWriter
from tessera.datamodules.common import DataError, atomic_write_text, collate_skipping, load_item
from tessera.datamodules.common.predict import PredictFilterMixin


class ToyItems(Dataset):
    def __init__(self, ids: list[str], corrupt: set[str], on_error: str):
        self.ids, self.corrupt, self.on_error = ids, corrupt, on_error

    def __len__(self):
        return len(self.ids)

    def _read(self, item_id: str) -> dict:
        if item_id in self.corrupt:
            raise DataError(f"/data/{item_id}.bin", "truncated file", "re-export it")
        x = torch.tensor([int(item_id.split("-")[1]) / 10.0])
        return {"item_id": item_id, "x": x, "y": 2 * x}

    def __getitem__(self, i):
        item_id = self.ids[i]
        return load_item(
            item_id, f"/data/{item_id}.bin", lambda: self._read(item_id), self.on_error
        )


class ToyDataModule(PredictFilterMixin, L.LightningDataModule):
    def __init__(
        self,
        n: int = 11,
        corrupt: list[str] | None = None,
        on_error: str = "skip",
        batch_size: int = 4,
    ):
        super().__init__()
        self.ids = [f"item-{i:02d}" for i in range(n)]
        self.corrupt = set(corrupt or [])
        self.on_error = on_error
        self.batch_size = batch_size

    def _loader(self, ids, shuffle=False):
        dataset = ToyItems(ids, self.corrupt, self.on_error)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, collate_fn=collate_skipping()
        )

    def train_dataloader(self):
        return self._loader(self.ids, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.ids)

    def predict_dataloader(self):
        return self._loader(self.keep_for_predict(self.ids, lambda i: i))


class ToyModule(L.LightningModule):
    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.lin = torch.nn.Linear(1, 1)

    def training_step(self, batch, _):
        loss = torch.nn.functional.mse_loss(self.lin(batch["x"]), batch["y"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        self.log("val_loss", torch.nn.functional.mse_loss(self.lin(batch["x"]), batch["y"]))

    def predict_step(self, batch, _):
        if "x" not in batch:
            return []
        pred = self.lin(batch["x"]).squeeze(-1)
        return [
            {"item_id": i, "pred": float(p), "target": float(t)}
            for i, p, t in zip(batch["item_id"], pred, batch["y"].squeeze(-1), strict=True)
        ]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ToyWriter(ItemPredictionWriter):
    def output_paths(self, item_id):
        return [self.output_dir / f"{item_id}.json"]

    def write_item(self, item):
        atomic_write_text(self.output_paths(item["item_id"])[0], json.dumps(item))
        self.item_metrics[item["item_id"]] = {"abs_err": abs(item["pred"] - item["target"])}


def predict_in_processes(out: Path, devices: int, corrupt: tuple[str, ...] = ("item-03",)) -> None:
    """Predict every toy item with ``devices`` CPU processes (script entry for DDP)."""
    L.seed_everything(0)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        callbacks=[ToyWriter(str(out))],
        logger=False,
        enable_progress_bar=False,
    )
    trainer.predict(
        ToyModule(), datamodule=ToyDataModule(corrupt=list(corrupt)), return_predictions=False
    )


if __name__ == "__main__":
    predict_in_processes(Path(sys.argv[1]), int(sys.argv[2]))
