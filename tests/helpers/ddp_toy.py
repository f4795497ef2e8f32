"""Toy DDP job: fit a linear model on 2 CPU processes, then predict with a per-rank writer.

Run as a script (Lightning's ``ddp`` strategy re-launches the running script per rank):
``python ddp_toy.py OUT_DIR``. Writes ``OUT_DIR/pred-rank{R}.pt`` with (index, prediction)
pairs and ``OUT_DIR/fit.json`` with the world size and final loss from rank 0.
"""

import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

N_ITEMS = 37  # not a multiple of the world size, so uneven shards are exercised


class Line(Dataset):
    def __len__(self):
        return N_ITEMS

    def __getitem__(self, i):
        x = torch.tensor([i / N_ITEMS], dtype=torch.float32)
        return i, x, 3 * x + 1


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)

    def training_step(self, batch, _):
        _, x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x), y)
        self.log("loss", loss, sync_dist=True)
        return loss

    def predict_step(self, batch, _):
        idx, x, _ = batch
        return idx, self.lin(x).squeeze(-1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class RankWriter(BasePredictionWriter):
    def __init__(self, out: Path):
        super().__init__(write_interval="epoch")
        self.out = out

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        pairs = [
            (int(i), float(p)) for idx, pred in predictions for i, p in zip(idx, pred, strict=True)
        ]
        torch.save(pairs, self.out / f"pred-rank{trainer.global_rank}.pt")


def main(out: Path) -> None:
    L.seed_everything(0)
    out.mkdir(parents=True, exist_ok=True)
    model = Regressor()
    common = dict(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = L.Trainer(max_epochs=30, enable_checkpointing=False, **common)
    trainer.fit(model, DataLoader(Line(), batch_size=8, shuffle=True))
    if trainer.global_rank == 0:
        summary = {
            "world_size": trainer.world_size,
            "loss": float(trainer.callback_metrics["loss"]),
        }
        (out / "fit.json").write_text(json.dumps(summary))
    predictor = L.Trainer(callbacks=[RankWriter(out)], **common)
    predictor.predict(model, DataLoader(Line(), batch_size=5), return_predictions=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
