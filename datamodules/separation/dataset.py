"""Datasets of (mixture, sources): fixed mixtures, dynamic mixing, and prediction inputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tessera.datamodules.common import DataError, OnError, load_item
from tessera.datamodules.separation.audio import read_audio
from tessera.datamodules.separation.formats import Mixture


class AudioCache:
    """Reads files at one sample rate, keeping decoded audio in memory when ``enabled``."""

    def __init__(self, sample_rate: int, enabled: bool = False):
        self.sample_rate = sample_rate
        self.enabled = enabled
        self._store: dict[Path, torch.Tensor] = {}

    def __call__(self, path: Path) -> torch.Tensor:
        if path in self._store:
            return self._store[path]
        audio = read_audio(path, self.sample_rate)[0]
        if self.enabled:
            self._store[path] = audio
        return audio


def crop(signals: torch.Tensor, length: int, rng: np.random.Generator | None) -> torch.Tensor:
    """A ``length``-sample window of ``(..., T)`` (random if ``rng``, else the start), zero-padded
    at the end when the signal is shorter."""
    t = signals.shape[-1]
    if t < length:
        return torch.nn.functional.pad(signals, (0, length - t))
    start = int(rng.integers(0, t - length + 1)) if rng is not None else 0
    return signals[..., start : start + length]


class MixtureDataset(Dataset):
    """Mixtures with their references: random ``segment``-second crops or full utterances.

    Args:
        mixtures: items from :mod:`tessera.datamodules.separation.formats`.
        sample_rate: rate every file is resampled to.
        num_spks: number of reference sources each item must have.
        segment: crop length in seconds (None: full utterance).
        on_error: ``raise`` or ``skip`` unreadable items.
        seed: base seed of the random crops (the epoch is mixed in by the datamodule).
        cache: keep decoded audio in memory.

    Items: ``{"item_id", "mix": (T,), "sources": (K, T), "length": int}``.
    """

    def __init__(
        self,
        mixtures: list[Mixture],
        sample_rate: int,
        num_spks: int,
        segment: float | None = None,
        on_error: OnError = "raise",
        seed: int = 0,
        cache: bool = False,
    ):
        self.mixtures = mixtures
        self.num_spks = num_spks
        self.segment = None if segment is None else int(segment * sample_rate)
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0
        self.read = AudioCache(sample_rate, cache)

    def __len__(self) -> int:
        return len(self.mixtures)

    def _load(self, index: int) -> dict:
        m = self.mixtures[index]
        if len(m.sources) != self.num_spks:
            raise DataError(
                m.mix,
                f"has {len(m.sources)} reference sources, expected {self.num_spks}",
                "set num_spks to the dataset's speaker count",
            )
        mix = self.read(m.mix)
        sources = [self.read(s) for s in m.sources]
        for path, s in zip(m.sources, sources, strict=True):
            if abs(len(s) - len(mix)) > 1:
                raise DataError(path, f"length {len(s)} differs from the mixture's {len(mix)}")
        length = min(len(mix), *(len(s) for s in sources))
        signals = torch.stack([mix[:length], *(s[:length] for s in sources)])
        if self.segment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            signals = crop(signals, self.segment, rng)
            length = min(length, self.segment)
        return {"item_id": m.item_id, "mix": signals[0], "sources": signals[1:], "length": length}

    def __getitem__(self, index: int):
        m = self.mixtures[index]
        return load_item(m.item_id, m.mix, lambda: self._load(index), self.on_error)


def speaker_of(path: Path, root: Path | None) -> str:
    """Speaker id of a single-speaker file: its first folder under ``root`` (LibriSpeech
    ``<speaker>/<chapter>/<utt>.flac``), or the file itself when files sit directly in ``root``."""
    if root is not None:
        parts = path.relative_to(root).parts
        if len(parts) > 1:
            return parts[0]
    return re.sub(r"\.\w+$", "", str(path))


class DynamicMixingDataset(Dataset):
    """On-the-fly mixtures of random single-speaker utterances (Zeghidour & Grangier, 2021).

    Each item draws ``num_spks`` utterances of different speakers, crops ``segment`` seconds of
    each, normalises them to unit RMS, applies a random gain in ``[-snr, +snr]`` dB to all but the
    first, and sums them. Items are deterministic for (seed, epoch, index).

    Args:
        files: single-speaker audio files.
        root: folder whose first-level subfolders are speakers (None: each file is a speaker).
        sample_rate, num_spks, segment: as :class:`MixtureDataset`.
        epoch_size: number of mixtures per epoch.
        snr: maximum relative level in dB.
        seed: base seed.
        cache: keep decoded audio in memory.
    """

    def __init__(
        self,
        files: list[Path],
        root: Path | None,
        sample_rate: int,
        num_spks: int,
        segment: float,
        epoch_size: int = 1000,
        snr: float = 5.0,
        seed: int = 0,
        cache: bool = False,
    ):
        by_speaker: dict[str, list[Path]] = {}
        for f in files:
            by_speaker.setdefault(speaker_of(f, root), []).append(f)
        if len(by_speaker) < num_spks:
            raise ValueError(
                f"dynamic mixing needs at least num_spks={num_spks} speakers, found "
                f"{len(by_speaker)} in {root or 'the source files'}"
            )
        self.speakers = sorted(by_speaker)
        self.files = by_speaker
        self.num_spks = num_spks
        self.segment = int(segment * sample_rate)
        self.epoch_size = epoch_size
        self.snr = snr
        self.seed = seed
        self.epoch = 0
        self.read = AudioCache(sample_rate, cache)

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        speakers = rng.choice(len(self.speakers), size=self.num_spks, replace=False)
        sources = []
        for k, s in enumerate(speakers):
            files = self.files[self.speakers[int(s)]]
            audio = crop(self.read(files[int(rng.integers(len(files)))]), self.segment, rng)
            audio = audio / audio.pow(2).mean().sqrt().clamp(min=1e-8)
            gain = 0.0 if k == 0 else rng.uniform(-self.snr, self.snr)
            sources.append(audio * 10 ** (gain / 20))
        sources = torch.stack(sources)
        peak = float(sources.sum(0).abs().max())
        sources = sources * (float(rng.uniform(0.3, 0.9)) / max(peak, 1e-8))
        return {
            "item_id": f"dm-{self.epoch}-{index}",
            "mix": sources.sum(0),
            "sources": sources,
            "length": self.segment,
        }


class PredictDataset(Dataset):
    """Mixtures read at their own sample rate (the predictor resamples in and out).

    Items: ``{"item_id", "mix": (T,), "sample_rate": int, "sources": (K, T) | None}`` where
    references, when listed, are resampled to the mixture's rate.
    """

    def __init__(self, mixtures: list[Mixture], on_error: OnError = "skip"):
        self.mixtures = mixtures
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.mixtures)

    def _load(self, index: int) -> dict:
        m = self.mixtures[index]
        mix, rate = read_audio(m.mix)
        sources = None
        if m.sources:
            refs = [read_audio(s, rate)[0] for s in m.sources]
            length = min(len(mix), *(len(r) for r in refs))
            sources = torch.stack([r[:length] for r in refs])
            if length < len(mix):
                sources = torch.nn.functional.pad(sources, (0, len(mix) - length))
        return {"item_id": m.item_id, "mix": mix, "sample_rate": rate, "sources": sources}

    def __getitem__(self, index: int):
        m = self.mixtures[index]
        return load_item(m.item_id, m.mix, lambda: self._load(index), self.on_error)
