"""LightningModule of the try-on app: MV-VTON diffusion, and the baselines in the same CLI.

``method``:
- ``diffusion`` — DDPM training (ε-MSE + ``x0_l1_weight`` · L1 on the one-step x̂₀, as
  MV-VTON's loss without its VGG term; or the v- / x₀-MSE with ``prediction_type``
  ``"v_prediction"`` / ``"sample"``),
  DDIM sampling (x̂₀ clipped, ε made consistent with it) started from the noised pre-aligned
  garment at the last training timestep, unmasked region composited back.
- ``regressor`` — the same UNet without noise input, trained with L1 to output the image.
- ``paste`` — no network: the pre-aligned garment composited onto the agnostic person.

``front_only=True`` is the ablation without view selection (always the front garment).
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Literal

import lightning as L
import torch

from tessera.apps.tryon.metrics import TryOnScores
from tessera.apps.tryon.model import TryOnUNet
from tessera.datamodules.common import is_empty_batch

IMAGE_KEYS = (
    "person",
    "agnostic",
    "prealigned",
    "prealigned_front",
    "prealigned_back",
    "garment_front",
    "garment_back",
    "skeleton",
    "skeleton_front",
    "skeleton_back",
)
METHODS = ("diffusion", "regressor", "paste")


def to_model_space(batch: dict) -> dict:
    """Images [0, 1] → [-1, 1]; masks and flags unchanged."""
    return {k: (v * 2 - 1 if k in IMAGE_KEYS else v) for k, v in batch.items()}


def item_generator(seed: int, item_id: str, device) -> torch.Generator:
    """Noise depends on (seed, item) only, so a result does not change with batch size,
    resumption or the number of DDP ranks."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + zlib.crc32(item_id.encode())) % (2**63))
    return g


def weighted_mean(error: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``error`` ``(B, C, H, W)`` with per-pixel ``weight`` ``(B, 1, H, W)``."""
    weight = weight.expand_as(error)
    return (error * weight).sum() / weight.sum()


class TryOnModule(L.LightningModule):
    """Args:
    method: ``diffusion``, ``regressor`` or ``paste``.
    net: :class:`~.model.TryOnUNet` options.
    front_only: ablation — always condition on (and start from) the front garment.
    num_train_timesteps, beta_schedule, beta_start, beta_end: the DDPM noise schedule.
    prediction_type: what the network predicts: ``epsilon`` (MV-VTON), ``v_prediction``
        (v = √ᾱ ε − √(1−ᾱ) x₀, Salimans & Ho 2022) or ``sample`` (x₀ itself, MSE on x₀; the
        tiny config's). Neither of the last two amplifies the x̂₀ error by 1/√ᾱ at high
        noise levels, as ε does.
    x0_l1_weight: weight of the L1 loss on the one-step x̂₀.
    mask_loss_weight: weight of a pixel inside the inpainting mask relative to one outside it
        in both loss terms (1 = a plain mean). The unmasked region is composited back from
        the person, so its error never reaches a result; weighting the generated region
        spends the net's capacity where it is drawn.
    lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay.
    ddim_steps: DDIM steps for validate/test/predict.
    val_ddim_steps: DDIM steps used to score validation during fit (cheaper).
    seed: sampling seed (per item, see :func:`item_generator`).
    ema_decay: keep an exponential moving average of the network's weights with this decay
        (0 = off) and sample / evaluate with it, as diffusion models usually are.
    weights: initial weights (registry name or file), e.g. to fine-tune the shipped one.
    predict_out: folder ``predict`` writes ``<person>___<cloth>.png`` to.
    overwrite: re-predict items whose outputs exist.
    """

    def __init__(
        self,
        method: Literal["diffusion", "regressor", "paste"] = "diffusion",
        net: dict[str, Any] | None = None,
        front_only: bool = False,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon",
        x0_l1_weight: float = 1.0,
        mask_loss_weight: float = 1.0,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        ddim_steps: int = 20,
        val_ddim_steps: int = 10,
        seed: int = 23,
        ema_decay: float = 0.0,
        weights: str | None = None,
        predict_out: str = "tryon_results",
        overwrite: bool = False,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.save_hyperparameters()
        self.model = (
            None if method == "paste" else TryOnUNet(**(net or {}), diffusion=method == "diffusion")
        )
        self.ema = None
        if ema_decay and self.model is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
        from diffusers import DDIMScheduler, DDPMScheduler

        schedule = dict(
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            beta_start=beta_start,
            beta_end=beta_end,
            prediction_type=prediction_type,
        )
        self.train_scheduler = DDPMScheduler(**schedule, clip_sample=True)
        self.sample_scheduler = DDIMScheduler(
            **schedule, clip_sample=True, set_alpha_to_one=False, timestep_spacing="trailing"
        )
        self.scores = TryOnScores()
        if weights:
            from tessera.apps.common.weights import read_weights

            state = read_weights(weights, "tryon").state_dict
            self.load_state_dict(self.match_ema(state), strict=True)

    def match_ema(self, state: dict) -> dict:
        """``state`` made to fit this module's EMA setting: a file with an EMA copy loaded
        without one gives its averaged weights to the network; a file without one starts
        this module's average at its network weights."""
        has_ema = any(k.startswith("ema.") for k in state)
        if self.ema is None and has_ema:
            return {f"model.{k[11:]}": v for k, v in state.items() if k.startswith("ema.module.")}
        if self.ema is not None and not has_ema:
            ema = {f"ema.module.{k[6:]}": v for k, v in state.items() if k.startswith("model.")}
            return state | ema | {"ema.n_averaged": torch.tensor(1, dtype=torch.long)}
        return state

    @property
    def net(self) -> TryOnUNet:
        """The network in use: the EMA copy outside training when one is kept."""
        if self.ema is not None and not self.training:
            return self.ema.module
        return self.model

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    # ---------------------------------------------------------------- inputs
    def prealigned(self, b: dict) -> torch.Tensor:
        return b["prealigned_front"] if self.hparams.front_only else b["prealigned"]

    def context(self, b: dict):
        return self.net.garment_context(b, front_only=self.hparams.front_only)

    # ---------------------------------------------------------------- training
    def diffusion_loss(self, b: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        x0 = b["person"]
        n = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(
            0, self.hparams.num_train_timesteps, (n,), device=x0.device, generator=generator
        )
        x_t = self.train_scheduler.add_noise(x0, noise, t)
        out = self.net(x_t, t, b["agnostic"], b["mask"], self.prealigned(b), self.context(b))
        alpha = self.train_scheduler.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        if self.hparams.prediction_type == "v_prediction":
            target = self.train_scheduler.get_velocity(x0, noise, t)
            x0_hat = alpha.sqrt() * x_t - (1 - alpha).sqrt() * out
        elif self.hparams.prediction_type == "sample":
            target, x0_hat = x0, out
        else:
            target = noise
            x0_hat = (x_t - (1 - alpha).sqrt() * out) / alpha.sqrt()
        weight = self.pixel_weight(b["mask"])
        x0_loss = weighted_mean((x0_hat.clamp(-1, 1) - x0).abs(), weight)
        return weighted_mean((out - target) ** 2, weight) + self.hparams.x0_l1_weight * x0_loss

    def regression_loss(self, b: dict) -> torch.Tensor:
        return weighted_mean((self.regress(b) - b["person"]).abs(), self.pixel_weight(b["mask"]))

    def pixel_weight(self, mask: torch.Tensor) -> torch.Tensor:
        """Per-pixel loss weight ``(B, 1, H, W)``: ``mask_loss_weight`` inside the mask, 1 out."""
        return 1 + (self.hparams.mask_loss_weight - 1) * mask

    def regress(self, b: dict) -> torch.Tensor:
        zeros = torch.zeros(b["person"].shape[0], dtype=torch.long, device=b["mask"].device)
        out = self.net(None, zeros, b["agnostic"], b["mask"], self.prealigned(b), self.context(b))
        return out.clamp(-1, 1)

    def training_step(self, batch: dict, _: int):
        if is_empty_batch(batch):
            return None
        b = to_model_space(batch)
        if self.hparams.method == "diffusion":
            loss = self.diffusion_loss(b)
        else:
            loss = self.regression_loss(b)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["item_id"]))
        return loss

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(
        self, batch: dict, steps: int | None = None, seed: int | None = None, progress=None
    ) -> torch.Tensor:
        """Try-on results ``(B, 3, H, W)`` in [0, 1] for a batch of dataset samples.

        Args:
            steps: DDIM steps (default ``ddim_steps``).
            seed: sampling seed (default ``seed``).
            progress: optional callable ``progress(step, total)``.
        """
        b = to_model_space(batch)
        mask, agnostic, start = b["mask"], b["agnostic"], self.prealigned(b)
        if self.hparams.method == "paste":
            out = start
        elif self.hparams.method == "regressor":
            out = self.regress(b)
        else:
            out = self.ddim_sample(
                b,
                start,
                steps or self.hparams.ddim_steps,
                self.hparams.seed if seed is None else seed,
                progress,
            )
        out = mask * out + (1 - mask) * agnostic  # the unmasked region is the person's own
        return ((out + 1) / 2).clamp(0, 1)

    def ddim_sample(self, b, start, steps: int, seed: int, progress=None) -> torch.Tensor:
        scheduler = self.sample_scheduler
        scheduler.set_timesteps(steps, device=start.device)
        noise = torch.stack(
            [
                torch.randn(start.shape[1:], generator=item_generator(seed, i, "cpu"))
                for i in b["item_id"]
            ]
        ).to(start.device)
        t0 = scheduler.timesteps[0]
        x = scheduler.add_noise(start, noise, t0.repeat(len(start)))  # x_T from the garment
        context = self.context(b)  # local/global garment tokens: computed once, reused
        for k, t in enumerate(scheduler.timesteps):
            tt = t.repeat(len(start)).to(start.device)
            out = self.net(x, tt, b["agnostic"], b["mask"], start, context)
            # ε re-derived from the clipped x̂₀: at high t, 1/√ᾱ_t (up to 157 for this pixel
            # schedule) pushes x̂₀ out of [-1, 1] for any ε error, and pairing the clipped x̂₀
            # with the raw ε (diffusers' default) carries that error into the next state.
            x = scheduler.step(out, t, x, use_clipped_model_output=True).prev_sample
            if progress is not None:
                progress(k + 1, len(scheduler.timesteps))
        return x.clamp(-1, 1)

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict, stage: str, steps: int) -> None:
        if is_empty_batch(batch):
            return
        n = len(batch["item_id"])
        if self.model is not None and self.hparams.method == "diffusion":
            g = torch.Generator(device="cpu").manual_seed(0)
            loss = self.diffusion_loss(to_model_space(batch), g)
            self.log(f"{stage}/loss", loss, batch_size=n)
        result = self.generate(batch, steps)
        self.update_scores(self.scores, result, batch)

    @staticmethod
    def update_scores(scores: TryOnScores, result: torch.Tensor, batch: dict) -> dict:
        is_back = torch.as_tensor(batch["view"]) == 3
        has_counterfactual = batch.get("has_counterfactual")
        return scores.update(
            result,
            batch["person"],
            batch["mask"],
            batch["prealigned_back"],
            batch["prealigned_front"],
            is_back.to(result.device),
            batch.get("counterfactual"),
            None
            if has_counterfactual is None
            else torch.as_tensor(has_counterfactual).to(result.device),
        )

    def _log_scores(self, stage: str) -> None:
        for key, value in self.scores.compute().items():
            self.log(f"{stage}/{key}", value, prog_bar=key == "ssim", sync_dist=True)
        self.scores = TryOnScores()

    def on_validation_epoch_start(self) -> None:
        self.scores = TryOnScores()

    def validation_step(self, batch: dict, _: int) -> None:
        fitting = self.trainer is not None and self.trainer.state.fn == "fit"
        steps = self.hparams.val_ddim_steps if fitting else self.hparams.ddim_steps
        self._evaluate(batch, "val", steps)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_start(self) -> None:
        self.scores = TryOnScores()

    def test_step(self, batch: dict, _: int) -> None:
        self._evaluate(batch, "test", self.hparams.ddim_steps)

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def predict_step(self, batch: dict, _: int) -> list[dict]:
        if is_empty_batch(batch):
            return []
        result = self.generate(batch)
        out = []
        per_item = None
        if bool(torch.as_tensor(batch["paired"]).all()):
            per_item = self.update_scores(TryOnScores(), result, batch)
        for i, item_id in enumerate(batch["item_id"]):
            item = {"item_id": item_id, "image": result[i].cpu()}
            if per_item is not None:
                item["metrics"] = {k: float(v[i]) for k, v in per_item.items()}
            out.append(item)
        return out

    def configure_callbacks(self):
        if self.trainer is not None and self.trainer.state.fn == "predict":
            from tessera.apps.tryon.writer import TryOnWriter

            return [TryOnWriter(self.hparams.predict_out, self.hparams.overwrite)]
        return []

    def configure_optimizers(self):
        if self.model is None:
            raise ValueError("method 'paste' has no weights to fit; use validate/test/predict")
        opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        warmup = max(1, self.hparams.warmup_steps)
        total = max(1, int(self.trainer.estimated_stepping_batches))

        def factor(step: int) -> float:
            return (
                min(1.0, (step + 1) / warmup)
                * 0.5
                * (1 + math.cos(math.pi * min(step, total) / total))
            )

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
