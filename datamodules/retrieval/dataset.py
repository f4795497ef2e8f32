"""Video-text samples: F frames per clip (X-Pool interval sampling), captions, audio log-mel.

A sample is a dict:

- ``frames``: float ``(F, 3, S, S)``, CLIP-normalised;
- ``audio`` / ``audio_mask``: ``(A, n_mels)`` log-mel and bool ``(A,)`` (only with audio);
- ``captions``: all captions of the clip, and in training ``caption``: one drawn at random
  (the others tell the loss which in-batch pairs are not negatives);
- ``video_id``, ``path``.

Evaluation frames are the middle frame of each interval with a resize + centre crop; training
frames are a random frame per interval with a random resized crop (scale 0.5-1) and a
horizontal flip, the same for every frame of a clip (X-Pool's ``clip_train``/``clip_test``).
The crop scale and the flip are options: a flip is wrong when captions say "left"/"right".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms import v2

from tessera.datamodules.common import OnError, SkippedItem, load_item
from tessera.datamodules.common.video import probe, read_audio, read_frames, sample_indices
from tessera.datamodules.retrieval.audio import SAMPLE_RATE, log_mel, seconds_for
from tessera.datamodules.retrieval.cache import FrameCache
from tessera.datamodules.retrieval.layouts import VideoItem

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(F, 3, H, W)`` to CLIP-normalised float."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


def eval_transform(frames: np.ndarray, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` (bicubic) and centre-crop: ``(F, 3, size, size)``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    if min(h, w) != size:
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        x = F.interpolate(x.float(), size=new, mode="bicubic", align_corners=False)
        x = x.clamp(0, 255).round().to(torch.uint8)
    return normalise(v2.functional.center_crop(x, [size, size]))


def train_transform(frames: np.ndarray, size: int, crop_scale: tuple[float, float] = (0.5, 1.0),
                    hflip: bool = True) -> torch.Tensor:  # fmt: skip
    """Random resized crop (area ``crop_scale``) + horizontal flip (when ``hflip``), shared by
    a clip's frames."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    x = v2.RandomResizedCrop(size, scale=tuple(crop_scale), antialias=True)(x)
    if hflip and torch.rand(()) < 0.5:
        x = x.flip(-1)
    return normalise(x)


class VideoTextDataset(Dataset):
    """Args:
    items: videos with captions (from :func:`~tessera.datamodules.retrieval.layouts.read_split`).
    num_frames: F.
    image_size: S.
    train: random frames / crops / caption (else middle frames, centre crop, all captions).
    audio: add the log-mel of the audio track.
    audio_frames, n_mels: log-mel size (10 ms frames).
    cache: optional decoded-frame cache.
    on_error: ``raise`` or ``skip`` unreadable videos.
    crop_scale: area range of the training crop.
    hflip: random horizontal flips in training.
    """

    def __init__(
        self,
        items: Sequence[VideoItem],
        num_frames: int,
        image_size: int,
        train: bool = False,
        audio: bool = False,
        audio_frames: int = 1024,
        n_mels: int = 128,
        cache: FrameCache | None = None,
        on_error: OnError = "raise",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        hflip: bool = True,
    ):
        self.items = list(items)
        self.crop_scale, self.hflip = tuple(crop_scale), hflip
        self.num_frames, self.image_size, self.train = num_frames, image_size, train
        self.audio, self.audio_frames, self.n_mels = audio, audio_frames, n_mels
        self.cache, self.on_error = cache, on_error

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self) -> np.random.Generator:
        # torch's RNG is seeded per worker and advances, so draws differ across epochs
        return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))

    def _frames(self, path: Path) -> np.ndarray:
        if self.cache is not None:
            grid = self.cache.frames(path)  # (F, P, H, W, 3)
            if self.train:
                pick = self._rng().integers(0, grid.shape[1], size=grid.shape[0])
            else:
                pick = np.full(grid.shape[0], grid.shape[1] // 2)
            return grid[np.arange(grid.shape[0]), pick]
        mode = "random" if self.train else "middle"
        indices = sample_indices(probe(path).num_frames, self.num_frames, mode, self._rng())
        return read_frames(path, indices, short_side=self.image_size)

    def _load(self, item: VideoItem) -> dict:
        frames = self._frames(item.path)
        if self.train:
            frames = train_transform(frames, self.image_size, self.crop_scale, self.hflip)
        else:
            frames = eval_transform(frames, self.image_size)
        sample = {"video_id": item.video_id, "path": str(item.path), "frames": frames}
        if self.audio:
            wave = read_audio(item.path, SAMPLE_RATE, max_seconds=seconds_for(self.audio_frames))
            sample["audio"], sample["audio_mask"] = log_mel(wave, self.audio_frames, self.n_mels)
        if self.train:
            if not item.captions:
                raise ValueError(f"{item.path}: training needs captions")
            sample["caption"] = item.captions[int(self._rng().integers(len(item.captions)))]
        sample["captions"] = list(item.captions)  # training: to mask false negatives
        return sample

    def __getitem__(self, index: int) -> dict | SkippedItem:
        item = self.items[index]
        return load_item(item.video_id, item.path, lambda: self._load(item), self.on_error)


def collate_videos(samples: list[dict]) -> dict:
    """Stack tensors; keep ids, paths, captions as lists (``captions``: one list per video)."""
    batch: dict = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
