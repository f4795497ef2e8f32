"""LightningModule: contrastive text-video training and R@K evaluation (X-Pool recipe).

Training: a batch of B clips with one random caption each; the ``(B, B)`` text x video
similarities (one pooling per pair for X-Pool) times CLIP's logit scale (clamped at 100)
go through a symmetric cross-entropy. AdamW with separate learning rates for CLIP and for
the new layers (pooling head, audio encoder), cosine schedule with linear warm-up.

Optionally (``mask_false_negatives``) an in-batch pair whose caption is also a caption of the
other clip (MSR-VTT repeats sentences such as "a man is talking"; the synthetic world's
one-event captions are true of many clips) is not used as a negative.

Validation/test: frame features of every clip and every caption are collected (gathered
across DDP ranks), then the full caption x video matrix is scored in chunks and reduced to
``t2v_*`` / ``v2t_*`` metrics (:mod:`tessera.apps.retrieval.metrics`). ``eval_scoring``
picks the scores ranked: ``cosine`` (the published X-Pool / CLIP4Clip protocol, default)
or ``dual_softmax`` (hub-aware, transductive; :func:`~tessera.apps.retrieval.metrics.dual_softmax`
at the model's logit scale).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from tessera.apps.retrieval.metrics import dual_softmax, retrieval_metrics
from tessera.apps.retrieval.model import RetrievalModel, clip_loss
from tessera.datamodules.common import is_empty_batch

SCORINGS = ("cosine", "dual_softmax")


def false_negative_mask(captions: list[str], clip_captions: list[list[str]]) -> torch.Tensor:
    """``(B, B)`` bool: caption ``i`` is also a caption of clip ``j`` (``i != j``)."""
    sets = [set(c) for c in clip_captions]
    return torch.tensor([[i != j and text in sets[j] for j in range(len(sets))]
                         for i, text in enumerate(captions)])  # fmt: skip


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return (t.float() if t.is_floating_point() else t).cpu()


class RetrievalModule(L.LightningModule):
    """Args:
    clip, pretrained, quick_gelu, pooling, heads, dropout, audio_frames, n_mels,
    audio_patch, audio_layers: see :class:`~tessera.apps.retrieval.model.RetrievalModel`.
    num_frames: F frames per clip (checked against the datamodule).
    clip_lr: learning rate of the CLIP encoders (1e-5 in the X-Pool paper).
    head_lr: learning rate of the pooling head / audio encoder (3e-5 for MSR-VTT 9k).
    weight_decay: AdamW weight decay (0.2).
    warmup: fraction of the steps with linear warm-up (0.1).
    mask_false_negatives: leave in-batch pairs whose caption is also one of the other
        clip's captions out of the loss (off in the X-Pool paper setting).
    eval_scoring: ``cosine`` (published protocol) or ``dual_softmax`` (hub-aware).
    eval_text_batch: captions encoded at once during evaluation.
    eval_video_chunk: videos scored at once during evaluation.
    """

    def __init__(
        self,
        clip: str | dict[str, Any] = "ViT-B-32",
        pretrained: str | None = None,
        quick_gelu: bool = False,
        pooling: str = "xpool",
        heads: int = 1,
        dropout: float = 0.3,
        audio_frames: int = 1024,
        n_mels: int = 128,
        audio_patch: int = 16,
        audio_layers: int = 2,
        num_frames: int = 12,
        clip_lr: float = 1e-5,
        head_lr: float = 3e-5,
        weight_decay: float = 0.2,
        warmup: float = 0.1,
        mask_false_negatives: bool = False,
        eval_scoring: str = "cosine",
        eval_text_batch: int = 256,
        eval_video_chunk: int = 128,
    ):
        super().__init__()
        if eval_scoring not in SCORINGS:
            raise ValueError(f"eval_scoring must be one of {SCORINGS}, got {eval_scoring!r}")
        self.save_hyperparameters()
        self.model = RetrievalModel(
            clip, pretrained, quick_gelu, pooling, heads, dropout, audio_frames, n_mels,
            audio_patch, audio_layers,
        )  # fmt: skip
        self._eval: list[dict] = []

    # -- checks ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer else None
        hp = getattr(data, "hparams", None)
        if hp is None:
            return
        pairs = [("num_frames", self.hparams.num_frames),
                 ("image_size", self.model.image_size)]  # fmt: skip
        if self.model.uses_audio:
            pairs += [("audio_frames", self.hparams.audio_frames), ("n_mels", self.hparams.n_mels)]
            if not hp.get("audio", False):
                raise ValueError("pooling 'tefal' needs audio: set data.audio=true")
        for key, want in pairs:
            if key in hp and hp[key] != want:
                raise ValueError(f"data.{key}={hp[key]} but the model was built for {want}; "
                                 f"set data.{key}={want}")  # fmt: skip

    # -- encoding ----------------------------------------------------------------------------
    def encode_videos(self, batch: dict) -> dict[str, torch.Tensor]:
        """Frame features ``(B, F, C)`` and, for the audio head, audio tokens + mask."""
        out = {"frames": self.model.encode_frames(batch["frames"])}
        if self.model.uses_audio:
            out["audio"], out["audio_mask"] = self.model.encode_audio(
                batch["audio"], batch["audio_mask"]
            )
        return out

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.model.tokenize(texts).to(self.device))

    # -- training ----------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int):
        if is_empty_batch(batch):
            return None
        videos = self.encode_videos(batch)
        text = self.encode_texts(batch["caption"])
        sims = self.model.similarity(text, videos["frames"], videos.get("audio"),
                                     videos.get("audio_mask"))  # fmt: skip
        mask = None
        if self.hparams.mask_false_negatives and "captions" in batch:
            mask = false_negative_mask(batch["caption"], batch["captions"]).to(sims.device)
            self.log("train/false_negatives", mask.float().sum(1).mean(), batch_size=len(mask))
        loss = clip_loss(sims, self.model.logit_scale, mask)
        self.log("train/loss", loss, prog_bar=True, batch_size=sims.shape[0])
        self.log("train/logit_scale", self.model.logit_scale, batch_size=sims.shape[0])
        return loss

    # -- evaluation --------------------------------------------------------------------------
    def _collect(self, batch: dict) -> None:
        if is_empty_batch(batch):
            return
        videos = self.encode_videos(batch)
        for i, video_id in enumerate(batch["video_id"]):
            item = {k: _cpu(v[i]) for k, v in videos.items()}
            self._eval.append(item | {"video_id": video_id, "captions": batch["captions"][i]})

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch)

    def on_validation_epoch_start(self) -> None:
        self._eval = []

    on_test_epoch_start = on_validation_epoch_start

    def _gathered(self) -> list[dict]:
        items = self._eval
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[list[dict]] = [None] * dist.get_world_size()  # type: ignore[list-item]
            dist.all_gather_object(parts, items)
            items = [i for part in parts for i in part]
        unique: dict[str, dict] = {}
        for item in items:  # the distributed sampler repeats clips to even out shards
            unique.setdefault(item["video_id"], item)
        return list(unique.values())

    @torch.no_grad()
    def score(self, items: list[dict]) -> dict[str, float]:
        """Metrics of collected clips (every caption a t2v query)."""
        hp = self.hparams
        texts = [c for item in items for c in item["captions"]]
        text_video = torch.tensor([i for i, item in enumerate(items) for _ in item["captions"]])
        text = torch.cat([self.encode_texts(texts[s : s + hp.eval_text_batch])
                          for s in range(0, len(texts), hp.eval_text_batch)])  # fmt: skip
        stacked = {k: torch.stack([i[k] for i in items]).to(self.device)
                   for k in ("frames", "audio", "audio_mask") if k in items[0]}  # fmt: skip
        sims = self.model.similarity_matrix(
            text, stacked["frames"], stacked.get("audio"), stacked.get("audio_mask"),
            video_chunk=hp.eval_video_chunk,
        )  # fmt: skip
        if hp.get("eval_scoring", "cosine") == "dual_softmax":
            sims = dual_softmax(sims, float(self.model.logit_scale))
        return retrieval_metrics(sims.float().cpu(), text_video)

    def _log_metrics(self, prefix: str) -> None:
        items = self._gathered()
        self._eval = []
        if not items:
            return
        metrics = self.score(items)
        self.log_dict({f"{prefix}/{k}": v for k, v in metrics.items()}, sync_dist=False,
                      rank_zero_only=False)  # fmt: skip
        self.log(f"{prefix}/num_videos", float(len(items)))

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    # -- prediction: per-clip features (what `index` stores) ---------------------------------
    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        if is_empty_batch(batch):
            return []
        videos = self.encode_videos(batch)
        return [
            {"item_id": vid, "path": batch["path"][i]} | {k: _cpu(v[i]) for k, v in videos.items()}
            for i, vid in enumerate(batch["video_id"])
        ]

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        clip_params = [p for p in self.model.clip.parameters() if p.requires_grad]
        other = [p for n, p in self.model.named_parameters()
                 if not n.startswith("clip.") and p.requires_grad]  # fmt: skip
        groups = [{"params": clip_params, "lr": hp.clip_lr}]
        if other:
            groups.append({"params": other, "lr": hp.head_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = int(hp.warmup * total)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
