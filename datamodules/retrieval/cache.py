"""Decoded-frame cache: uint8 frames on disk so later epochs do not decode videos again.

An entry holds, for each of the F intervals of a clip, ``per_interval`` evenly spread frames
(the middle one included when ``per_interval`` is odd), resized to a short side. Training
picks one of them per interval at random, evaluation the middle one. Entries are keyed by
the file (absolute path, size, modification time) and the frame rule (F, per_interval,
short side), so an edited video or a different rule never reads a stale entry. Writes are
atomic, so several DataLoader workers (or DDP ranks) can fill the cache at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tessera.datamodules.common.io import atomic_write
from tessera.datamodules.common.video import probe, read_frames


def interval_grid(num_frames: int, count: int, per_interval: int) -> np.ndarray:
    """Frame indices ``(count, per_interval)``: evenly spread inside each of the ``count``
    intervals (X-Pool's intervals; short clips repeat their last frame)."""
    taken = min(num_frames, count)
    edges = np.linspace(0, num_frames, taken + 1).astype(int)
    starts, ends = edges[:-1], np.maximum(edges[1:] - 1, edges[:-1])
    j = np.arange(per_interval)
    width = (ends - starts + 1)[:, None]
    grid = starts[:, None] + (width * (2 * j + 1)) // (2 * per_interval)
    grid[:, per_interval // 2] = (starts + ends) // 2  # exactly sample_indices' middle frame
    if taken < count:
        grid = np.concatenate([grid, np.repeat(grid[-1:], count - taken, axis=0)])
    return grid


class FrameCache:
    """Args:
    root: cache folder (created).
    num_frames: F.
    per_interval: candidate frames stored per interval (odd, so evaluation gets the middle).
    short_side: frames are stored resized to this short side.
    """

    def __init__(self, root: str | Path, num_frames: int, per_interval: int, short_side: int):
        if per_interval < 1 or per_interval % 2 == 0:
            raise ValueError(f"per_interval must be odd and >= 1, got {per_interval}")
        self.root = Path(root)
        self.num_frames, self.per_interval, self.short_side = num_frames, per_interval, short_side

    def key(self, path: str | Path) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        rule = f"F{self.num_frames}-P{self.per_interval}-S{self.short_side}"
        raw = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{rule}"
        return hashlib.sha1(raw.encode()).hexdigest()

    def entry(self, path: str | Path) -> Path:
        key = self.key(path)
        return self.root / key[:2] / f"{key}.npy"

    def frames(self, path: str | Path) -> np.ndarray:
        """uint8 ``(F, per_interval, H, W, 3)`` from the cache, decoding once on a miss."""
        entry = self.entry(path)
        if entry.is_file():
            try:
                return np.load(entry)
            except (OSError, ValueError):  # a damaged entry is decoded again
                entry.unlink(missing_ok=True)
        grid = interval_grid(probe(path).num_frames, self.num_frames, self.per_interval)
        frames = read_frames(path, grid.reshape(-1).tolist(), short_side=self.short_side)
        frames = frames.reshape(*grid.shape, *frames.shape[1:])
        with atomic_write(entry) as tmp, open(tmp, "wb") as f:
            np.save(f, frames)
        return frames
