"""LightningModule: PIT SI-SNR training, SI-SDRi/SDRi evaluation, chunked prediction."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from tessera.apps.separation.inference import Separator, score
from tessera.apps.separation.metrics import pit_si_snr_loss, separation_metrics
from tessera.apps.separation.model import build_model
from tessera.datamodules.common import is_empty_batch
from tessera.datamodules.separation.audio import resample


class SeparationModule(L.LightningModule):
    """Trains and evaluates a separator (MossFormer or the ConvTasNet baseline).

    Args:
        arch: ``mossformer`` or ``convtasnet``.
        num_spks: number of sources K.
        sample_rate: rate the model works at (data is resampled to it).
        net: architecture options (see :class:`~.model.MossFormer`, :class:`~.model.ConvTasNet`).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up.
        lr_schedule: ``cosine`` (decay to 0 over the run's steps), ``constant`` after warm-up,
            or ``plateau``: halve the rate when validation SI-SDRi has not improved for
            ``plateau_patience`` validations (the MossFormer / SpeechBrain recipe).
        plateau_patience: validations without improvement before halving (``plateau``).
        init_weights: initial weights: a registry name, a ``.safetensors``/``.ckpt`` file of
            this app, or a folder of official MossFormer ``encoder/masknet/decoder.bin``
            (fine-tuning, or prediction with a shipped/official checkpoint). Their recorded
            architecture and sample rate must match this module's.
        chunk_seconds, overlap_seconds: overlap-add windows for prediction (None: one pass).
        predict_out: folder ``predict`` writes ``<id>_s{k}.wav`` and ``metrics.csv`` to.
        overwrite: re-separate items whose outputs already exist.
    """

    def __init__(
        self,
        arch: str = "mossformer",
        num_spks: int = 2,
        sample_rate: int = 8000,
        net: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        warmup_steps: int = 0,
        lr_schedule: str = "cosine",
        plateau_patience: int = 2,
        init_weights: str | None = None,
        chunk_seconds: float | None = 4.0,
        overlap_seconds: float = 1.0,
        predict_out: str = "separated",
        overwrite: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(arch, num_spks, net)
        if init_weights:
            from tessera.apps.separation.api import load_weights

            load_weights(self.model, init_weights, sample_rate)

    def setup(self, stage: str) -> None:
        """Refuse data whose sample rate or speaker count differs from the model's."""
        data = getattr(self.trainer, "datamodule", None) if self._trainer else None
        hp = self.hparams
        for key in ("sample_rate", "num_spks"):
            value = getattr(getattr(data, "hparams", None), key, hp[key])
            if stage != "predict" and value != hp[key]:
                raise ValueError(
                    f"data.{key}={value} but model.{key}={hp[key]}: the model would train or "
                    f"be scored on data it does not expect; set both to the same value"
                )

    def on_train_start(self) -> None:
        """Refuse a run whose validation would never happen (max_steps before the first
        check, e.g. LibriMix train-360's 12.7k-step epoch with an epoch-based interval)."""
        trainer = self.trainer
        if trainer.max_steps <= 0 or trainer.limit_val_batches == 0:
            return
        first = trainer.val_check_batch
        if trainer.check_val_every_n_epoch is not None:
            first += (trainer.check_val_every_n_epoch - 1) * trainer.num_training_batches
        if math.isfinite(first) and trainer.global_step + first > trainer.max_steps:
            raise ValueError(
                f"validation would never run: max_steps={trainer.max_steps} ends before the "
                f"first validation at step {trainer.global_step + int(first)}; set "
                "--trainer.val_check_interval to a number of steps <= max_steps (with "
                "--trainer.check_val_every_n_epoch null)"
            )

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.model(mix)

    def training_step(self, batch: dict, _: int):
        if is_empty_batch(batch):
            return None
        loss = pit_si_snr_loss(self(batch["mix"]), batch["sources"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["mix"]))
        return loss

    def _evaluate(self, batch: dict, stage: str) -> None:
        """Scores each utterance on its own, unpadded (as ``evaluate`` does): padding a batch
        would change what global attention sees."""
        if is_empty_batch(batch):
            return
        values: dict[str, list[torch.Tensor]] = {}
        for b, length in enumerate(batch["length"].tolist()):
            mix = batch["mix"][b : b + 1, :length]
            one = separation_metrics(
                self(mix).double(), batch["sources"][b : b + 1, :, :length].double(), mix.double()
            )
            for key, value in one.items():
                values.setdefault(key, []).append(value)
        n = len(batch["length"])
        for key, parts in values.items():
            self.log(
                f"{stage}/{key}", torch.cat(parts).mean().float(), batch_size=n,
                prog_bar=key == "si_sdri",
            )  # fmt: skip

    def validation_step(self, batch: dict, _: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, _: int) -> None:
        self._evaluate(batch, "test")

    def separator(self) -> Separator:
        hp = self.hparams
        return Separator(
            self.model, hp.sample_rate, hp.num_spks, hp.chunk_seconds, hp.overlap_seconds
        )

    def predict_step(self, batch: dict, _: int) -> list[dict]:
        """One dict per item: ``sources (K, T)`` at the item's own rate, metrics if references."""
        separator = self.separator()
        results = []
        for item in batch.get("items", []):
            mix, rate = item["mix"], item["sample_rate"]
            if float(mix.abs().max()) == 0.0:
                est = torch.zeros(self.hparams.num_spks, len(mix))
            else:
                est = separator.separate_waveform(resample(mix, rate, self.hparams.sample_rate))
                est = resample(est.cpu(), self.hparams.sample_rate, rate)
                est = torch.nn.functional.pad(est, (0, max(0, len(mix) - est.shape[-1])))
                est = est[:, : len(mix)]
            out = {"item_id": item["item_id"], "sources": est, "sample_rate": rate}
            if item.get("sources") is not None and float(mix.abs().max()) > 0:
                out["metrics"] = score(est, mix, item["sources"])
            results.append(out)
        return results

    def configure_callbacks(self):
        if self.trainer is not None and self.trainer.state.fn == "predict":
            from tessera.apps.separation.writer import SeparationWriter

            return [SeparationWriter(self.hparams.predict_out, self.hparams.overwrite)]
        return []

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.lr_schedule not in ("cosine", "constant", "plateau"):
            raise ValueError(
                "lr_schedule must be 'cosine', 'constant' or 'plateau', got "
                f"{self.hparams.lr_schedule!r}"
            )
        if self.hparams.lr_schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="max", factor=0.5, patience=self.hparams.plateau_patience
            )
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": "val/si_sdri", "interval": "epoch"},
            }
        warmup = max(1, self.hparams.warmup_steps)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        cosine = self.hparams.lr_schedule == "cosine"

        def factor(step: int) -> float:
            decay = 0.5 * (1 + math.cos(math.pi * min(step, total) / total)) if cosine else 1.0
            return min(1.0, (step + 1) / warmup) * decay

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
