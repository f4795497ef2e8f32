"""LightningDataModule for text-video retrieval on MSR-VTT, MSVD or generic data."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from tessera.datamodules.common import OnError, collate_skipping
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.retrieval.cache import FrameCache
from tessera.datamodules.retrieval.dataset import VideoTextDataset, collate_videos
from tessera.datamodules.retrieval.layouts import VideoItem, list_videos, read_split


class RetrievalDataModule(PredictFilterMixin, L.LightningDataModule):
    """Training clips with one random caption, evaluation clips with all their captions, and
    prediction over a split or a folder of videos.

    Args:
        data_dir: dataset root (MSR-VTT, MSVD or generic layout, see ``layouts.py``).
        layout: ``auto``, ``msrvtt``, ``msvd`` or ``generic``.
        msrvtt_train: MSR-VTT training list, ``9k`` or ``7k``.
        train_split, val_split, test_split: split names (MSR-VTT ``val``/``test`` = 1k-A).
        num_frames: F frames per clip (must match the model).
        image_size: S, crop size (must match the model's image encoder).
        batch_size: training batch (videos, one caption each).
        eval_batch_size: videos per validation/test/predict batch.
        num_workers: DataLoader workers (each opens its own video files).
        audio: add log-mel audio (for the TEFAL head).
        audio_frames, n_mels: log-mel size (1024 frames of 10 ms, 128 bins as AST).
        frame_cache: folder of the decoded-frame cache (uint8 on disk); None = decode always.
        cache_per_interval: frames the cache keeps per interval (odd; training draws one).
        predict_dir: folder of videos to predict on (default: ``data_dir``'s test split).
        on_error: training/evaluation policy for unreadable videos (prediction skips).
        crop_scale: area range of the training random resized crop (X-Pool: 0.5-1).
        hflip: random horizontal flips in training (X-Pool: on; off when captions say
            "left"/"right", as in the synthetic world).
    """

    def __init__(
        self,
        data_dir: str = "",
        layout: str = "auto",
        msrvtt_train: str = "9k",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        num_frames: int = 12,
        image_size: int = 224,
        batch_size: int = 32,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        audio: bool = False,
        audio_frames: int = 1024,
        n_mels: int = 128,
        frame_cache: str | None = None,
        cache_per_interval: int = 3,
        predict_dir: str | None = None,
        on_error: OnError = "raise",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        hflip: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.datasets: dict[str, VideoTextDataset] = {}

    def items(self, split: str) -> list[VideoItem]:
        hp = self.hparams
        return read_split(hp.data_dir, split, hp.layout, hp.msrvtt_train)

    def dataset(self, items: list[VideoItem], train: bool, on_error: OnError) -> VideoTextDataset:
        hp = self.hparams
        cache = None
        if hp.frame_cache:
            cache = FrameCache(hp.frame_cache, hp.num_frames, hp.cache_per_interval, hp.image_size)
        return VideoTextDataset(
            items, hp.num_frames, hp.image_size, train=train, audio=hp.audio,
            audio_frames=hp.audio_frames, n_mels=hp.n_mels, cache=cache, on_error=on_error,
            crop_scale=hp.crop_scale, hflip=hp.hflip,
        )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in ("fit", None):
            self.datasets["train"] = self.dataset(self.items(hp.train_split), True, hp.on_error)
        if stage in ("fit", "validate", None):
            self.datasets["val"] = self.dataset(self.items(hp.val_split), False, hp.on_error)
        if stage in ("test", None):
            self.datasets["test"] = self.dataset(self.items(hp.test_split), False, hp.on_error)

    def _loader(self, dataset, batch_size: int, shuffle: bool, drop_last: bool = False):
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.hparams.num_workers,
            collate_fn=collate_skipping(collate_videos),
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        # a last batch of one video gives a contrastive loss of zero; drop it when possible
        drop = len(dataset) > self.hparams.batch_size
        return self._loader(dataset, self.hparams.batch_size, True, drop)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"], self.hparams.eval_batch_size, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"], self.hparams.eval_batch_size, False)

    def predict_items(self) -> list[VideoItem]:
        hp = self.hparams
        return list_videos(hp.predict_dir) if hp.predict_dir else self.items(hp.test_split)

    def predict_dataloader(self) -> DataLoader:
        items = self.keep_for_predict(self.predict_items(), lambda i: i.video_id)
        return self._loader(self.dataset(items, False, "skip"), self.hparams.eval_batch_size, False)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        del state_dict

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
