"""Audio I/O for separation: soundfile reads, torchaudio resampling, clear errors on bad input."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from tessera.datamodules.common import DataError, atomic_write

log = logging.getLogger(__name__)
_RESAMPLE_LOGGED: set[tuple[int, int]] = set()


def check_waveform(audio: torch.Tensor, name: str = "audio") -> torch.Tensor:
    """Validate a mono waveform ``(T,)``: at least 1 sample, finite values.

    Raises:
        ValueError: naming ``name`` for a wrong rank, too few samples or NaN/Inf samples.
    """
    if audio.dim() != 1:
        raise ValueError(f"{name} must be a mono waveform (T,), got shape {tuple(audio.shape)}")
    if audio.numel() < 1:
        raise ValueError(f"{name} has no samples (empty); separation needs at least 1")
    if not torch.isfinite(audio).all():
        bad = int((~torch.isfinite(audio)).sum())
        raise ValueError(f"{name} contains {bad} NaN/Inf sample(s)")
    return audio


def to_mono(audio: torch.Tensor, name: str = "audio") -> torch.Tensor:
    """``(T,)`` or ``(T, C)`` with C in {1, 2} (soundfile layout) to ``(T,)``; stereo is averaged
    with a warning, other channel counts are refused."""
    if audio.dim() == 1:
        return audio
    if audio.dim() != 2:
        raise ValueError(f"{name} must be (T,) or (T, channels), got shape {tuple(audio.shape)}")
    channels = audio.shape[1]
    if channels == 1:
        return audio[:, 0]
    if channels == 2:
        warnings.warn(f"{name} is stereo; downmixing to mono", UserWarning, stacklevel=2)
        return audio.mean(dim=1)
    raise ValueError(f"{name} has {channels} channels; only mono or stereo is supported")


def resample(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (``torchaudio.functional.resample``)."""
    if orig_sr == new_sr:
        return audio
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    g = math.gcd(orig_sr, new_sr)
    return AF.resample(audio, orig_sr // g, new_sr // g)


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """Read a file as a float32 mono ``(T,)`` tensor, resampled to ``sample_rate`` if given.

    Returns:
        ``(audio, rate)`` where ``rate`` is ``sample_rate`` or the file's own rate.

    Raises:
        DataError: the file is missing, not audio, empty, non-finite or has > 2 channels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", "check the dataset paths")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise DataError(path, f"not a readable audio file ({err})", "use wav/flac/ogg") from err
    try:
        audio = check_waveform(to_mono(torch.from_numpy(data), "file"), "file")
    except ValueError as err:
        raise DataError(path, str(err)) from err
    if sample_rate is not None and rate != sample_rate:
        if (rate, sample_rate) not in _RESAMPLE_LOGGED:
            _RESAMPLE_LOGGED.add((rate, sample_rate))
            log.warning("resampling audio from %d Hz to %d Hz (e.g. %s)", rate, sample_rate, path)
        audio, rate = resample(audio, rate, sample_rate), sample_rate
    return audio, rate


def write_audio(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Atomically write a mono waveform as 16-bit PCM wav (clipped to [-1, 1])."""
    data = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
    data = np.clip(np.asarray(data, dtype=np.float32), -1.0, 1.0)
    with atomic_write(path) as tmp:
        sf.write(str(tmp), data, sample_rate, subtype="PCM_16")
    return Path(path)
