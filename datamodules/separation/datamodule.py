"""LightningDataModule for speech separation on LibriMix, WSJ0-mix, lists or plain folders."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tessera.datamodules.common import OnError, collate_skipping
from tessera.datamodules.common.predict import PredictFilterMixin
from tessera.datamodules.separation.dataset import (
    DynamicMixingDataset,
    MixtureDataset,
    PredictDataset,
    folder_speakers,
    source_speakers,
)
from tessera.datamodules.separation.formats import find_mixtures

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def pad_collate(items: list[dict]) -> dict:
    """Batch items of different lengths: zero-pad ``mix``/``sources`` and keep ``length``."""
    longest = max(i["mix"].shape[-1] for i in items)

    def stack(key: str) -> torch.Tensor:
        return torch.stack([F.pad(i[key], (0, longest - i[key].shape[-1])) for i in items])

    return {
        "item_id": [i["item_id"] for i in items],
        "mix": stack("mix"),
        "sources": stack("sources"),
        "length": torch.tensor([i["length"] for i in items]),
    }


def list_collate(items: list[dict]) -> dict:
    return {"items": list(items)}


class SeparationDataModule(PredictFilterMixin, L.LightningDataModule):
    """Training crops, full-utterance evaluation and prediction inputs.

    Args:
        data: dataset root (LibriMix tree, WSJ0-mix ``{tr,cv,tt}`` tree), a ``mix s1 s2`` list
            file, or (prediction) any folder of audio files.
        sample_rate: model rate; files at other rates are resampled (logged once).
        num_spks: sources per mixture.
        segment: training crop in seconds.
        batch_size: training batch size (evaluation uses ``eval_batch_size``).
        eval_batch_size: batch size of full-utterance validation/test batches.
        num_workers: DataLoader workers.
        train_split, val_split, test_split: split names (``train``/``val``/``test`` map to
            LibriMix ``train-100``/``dev``/``test`` and WSJ0-mix ``tr``/``cv``/``tt``).
        mode: LibriMix ``min`` or ``max``.
        mix_type: LibriMix mixture folder (``mix_clean``, ``mix_both``).
        dynamic_mixing: train on fresh random mixtures of single-speaker utterances.
        dm_folder: folder of single-speaker files for dynamic mixing (LibriSpeech
            ``<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``, WSJ0 ``<spk>xxxxx.wav``, or one
            subfolder per speaker; default: the training split's reference sources, speakers
            read from the LibriMix / WSJ0-2mix mixture ids).
        speaker_regex: regex whose group 1 is the speaker id of an utterance id (file stem,
            or each utterance of a mixture id) when names follow neither convention.
        dm_epoch_size: dynamic mixtures per epoch.
        predict_data: what ``predict`` separates (default: ``data``).
        predict_split: split of ``predict_data`` when it is a dataset tree.
        on_error: for training/evaluation (``raise``); prediction always skips and reports.
        cache_mb: memory (MB) for decoded training audio; 0 (default) reads files each time,
            as full-size corpora (LibriMix train-360: ~100 GB decoded) do not fit in RAM.
        seed: crop and mixing seed.
    """

    def __init__(
        self,
        data: str = "",
        sample_rate: int = 8000,
        num_spks: int = 2,
        segment: float = 2.0,
        batch_size: int = 4,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        mode: str = "min",
        mix_type: str = "mix_clean",
        dynamic_mixing: bool = False,
        dm_folder: str | None = None,
        dm_epoch_size: int = 1000,
        speaker_regex: str | None = None,
        predict_data: str | None = None,
        predict_split: str = "test",
        on_error: OnError = "raise",
        cache_mb: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.datasets: dict[str, torch.utils.data.Dataset] = {}

    def mixtures(self, split: str, data: str | None = None):
        hp = self.hparams
        return find_mixtures(data or hp.data, split, hp.sample_rate, hp.mode, hp.mix_type)

    def _train_dataset(self):
        hp = self.hparams
        if not hp.dynamic_mixing:
            return MixtureDataset(
                self.mixtures(hp.train_split), hp.sample_rate, hp.num_spks, hp.segment,
                hp.on_error, hp.seed, hp.cache_mb,
            )  # fmt: skip
        if hp.dm_folder:
            root = Path(hp.dm_folder)
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            sources = folder_speakers(files, root, hp.speaker_regex)
        else:
            sources = source_speakers(self.mixtures(hp.train_split), hp.speaker_regex)
        return DynamicMixingDataset(
            sources, hp.sample_rate, hp.num_spks, hp.segment, hp.dm_epoch_size,
            seed=hp.seed, cache_mb=hp.cache_mb,
        )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in ("fit", None):
            self.datasets["train"] = self._train_dataset()
        if stage in ("fit", "validate", None):
            self.datasets["val"] = self.eval_dataset(hp.val_split)
        if stage in ("test", None):
            self.datasets["test"] = self.eval_dataset(hp.test_split)

    def eval_dataset(self, split: str, data: str | None = None) -> MixtureDataset:
        """Full utterances of ``split`` with references."""
        hp = self.hparams
        return MixtureDataset(
            self.mixtures(split, data), hp.sample_rate, hp.num_spks, None, hp.on_error,
            cache_mb=hp.cache_mb,
        )  # fmt: skip

    def _loader(self, dataset, batch_size: int, shuffle: bool, collate) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            collate_fn=collate_skipping(collate),
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        if self.trainer is not None:
            dataset.epoch = self.trainer.current_epoch
        return self._loader(dataset, self.hparams.batch_size, True, pad_collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"], self.hparams.eval_batch_size, False, pad_collate)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"], self.hparams.eval_batch_size, False, pad_collate)

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        mixtures = self.mixtures(hp.predict_split, hp.predict_data)
        mixtures = self.keep_for_predict(mixtures, lambda m: m.item_id)
        return self._loader(PredictDataset(mixtures, "skip"), 1, False, list_collate)
