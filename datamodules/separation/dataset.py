"""Datasets of (mixture, sources): fixed mixtures, dynamic mixing, and prediction inputs."""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tessera.datamodules.common import DataError, OnError, load_item
from tessera.datamodules.separation.audio import read_audio
from tessera.datamodules.separation.formats import Mixture


class AudioCache:
    """Reads files at one sample rate, keeping up to ``max_mb`` MB of decoded audio in memory
    (least recently used first out; 0 disables it: full-size corpora do not fit in RAM)."""

    def __init__(self, sample_rate: int, max_mb: float = 0.0):
        self.sample_rate = sample_rate
        self.max_bytes = int(max_mb * 2**20)
        self._store: OrderedDict[Path, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def __call__(self, path: Path) -> torch.Tensor:
        if path in self._store:
            self._store.move_to_end(path)
            return self._store[path]
        audio = read_audio(path, self.sample_rate)[0]
        size = audio.numel() * audio.element_size()
        if 0 < size <= self.max_bytes:
            self._store[path] = audio
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._bytes -= self._store.popitem(last=False)[1].numel() * audio.element_size()
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
        cache_mb: memory for decoded audio (0: read every file each time).

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
        cache_mb: float = 0.0,
    ):
        self.mixtures = mixtures
        self.num_spks = num_spks
        self.segment = None if segment is None else int(segment * sample_rate)
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0
        self.read = AudioCache(sample_rate, cache_mb)

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


# LibriSpeech utterance ids: ``<speaker>-<chapter>-<utterance>`` (e.g. ``19-198-0001``).
LIBRISPEECH_UTTERANCE = re.compile(r"^(\d+)-\d+-\d+$")
# WSJ0 utterance ids: 8 characters, the first three name the speaker (e.g. ``011a010d``).
WSJ0_UTTERANCE = re.compile(r"^([0-9a-z]{3})[0-9a-z]{5}$", re.IGNORECASE)


def speaker_of_utterance(utterance: str, speaker_regex: str | None = None) -> str | None:
    """Speaker of an utterance id: group 1 of ``speaker_regex`` (searched), else the
    LibriSpeech or WSJ0 convention; None when the id follows neither."""
    if speaker_regex:
        found = re.search(speaker_regex, utterance)
        return found.group(1) if found else None
    for pattern in (LIBRISPEECH_UTTERANCE, WSJ0_UTTERANCE):
        found = pattern.match(utterance)
        if found:
            return found.group(1)
    return None


def mixture_utterances(mixture_id: str, num_spks: int) -> list[str] | None:
    """Utterance ids of the sources of a mixture id: LibriMix ``<utt1>_<utt2>`` or WSJ0-2mix
    ``<utt1>_<snr1>_<utt2>_<snr2>``; None for other names."""
    parts = mixture_id.split("_")
    if len(parts) == num_spks:
        return parts
    if len(parts) == 2 * num_spks:
        return parts[0::2]
    return None


def source_speakers(mixtures: list[Mixture], speaker_regex: str | None = None):
    """``[(source file, speaker id)]`` of every reference source, speakers read from the
    mixture ids (LibriMix / WSJ0-2mix naming, or ``speaker_regex`` on each utterance id).

    Mixtures whose ids name no speakers count each source as its own speaker (with a warning):
    dynamic mixing may then pair a speaker with themself."""
    pairs, unknown = [], 0
    for m in mixtures:
        utts = mixture_utterances(m.item_id, len(m.sources)) or []
        speakers = [speaker_of_utterance(u, speaker_regex) for u in utts]
        if len(speakers) != len(m.sources) or None in speakers:
            unknown += 1
            speakers = [f"{m.item_id}/s{k + 1}" for k in range(len(m.sources))]
        pairs.extend(zip(m.sources, speakers, strict=True))
    if unknown:
        warnings.warn(
            f"{unknown} of {len(mixtures)} mixture ids name no speakers (neither LibriMix "
            "'<spk>-<chapter>-<utt>_...' nor WSJ0-2mix '<utt>_<snr>_...'); each of their sources "
            "counts as its own speaker. Set data.speaker_regex to read them.",
            UserWarning,
            stacklevel=2,
        )
    return pairs


def folder_speakers(files: list[Path], root: Path, speaker_regex: str | None = None):
    """``[(file, speaker id)]`` of single-speaker files: from the file name (``speaker_regex``,
    LibriSpeech ``<speaker>-<chapter>-<utt>.flac``, WSJ0 ``<spk><5 chars>.wav``), else the first
    folder under ``root`` (one folder per speaker).

    Raises:
        DataError: a file directly in ``root`` whose name names no speaker.
    """
    pairs = []
    for f in files:
        speaker = speaker_of_utterance(f.stem, speaker_regex)
        if speaker is None:
            parts = f.relative_to(root).parts
            if len(parts) < 2:
                raise DataError(
                    f, "names no speaker", "put each speaker in its own folder or set "
                    "data.speaker_regex (a regex whose group 1 is the speaker id)",
                )  # fmt: skip
            speaker = parts[0]
        pairs.append((f, speaker))
    return pairs


class DynamicMixingDataset(Dataset):
    """On-the-fly mixtures of random single-speaker utterances (Zeghidour & Grangier, 2021).

    Each item draws ``num_spks`` utterances of ``num_spks`` different speakers, crops
    ``segment`` seconds of each, normalises them to unit RMS, applies a random gain in
    ``[-snr, +snr]`` dB to all but the
    first, and sums them. Items are deterministic for (seed, epoch, index).

    Args:
        sources: ``(single-speaker file, speaker id)`` pairs (:func:`source_speakers`,
            :func:`folder_speakers`).
        sample_rate, num_spks, segment: as :class:`MixtureDataset`.
        epoch_size: number of mixtures per epoch.
        snr: maximum relative level in dB.
        seed: base seed.
        cache_mb: memory for decoded audio.
    """

    def __init__(
        self,
        sources: list[tuple[Path, str]],
        sample_rate: int,
        num_spks: int,
        segment: float,
        epoch_size: int = 1000,
        snr: float = 5.0,
        seed: int = 0,
        cache_mb: float = 0.0,
    ):
        by_speaker: dict[str, list[Path]] = {}
        for f, speaker in sources:
            by_speaker.setdefault(speaker, []).append(f)
        if len(by_speaker) < num_spks:
            raise ValueError(
                f"dynamic mixing needs at least num_spks={num_spks} speakers, found "
                f"{len(by_speaker)}"
            )
        self.speakers = sorted(by_speaker)
        self.files = by_speaker
        self.num_spks = num_spks
        self.segment = int(segment * sample_rate)
        self.epoch_size = epoch_size
        self.snr = snr
        self.seed = seed
        self.epoch = 0
        self.read = AudioCache(sample_rate, cache_mb)

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
            "speakers": [self.speakers[int(s)] for s in speakers],
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
